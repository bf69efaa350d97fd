# AdamW with a one-cycle learning rate, as CenterPoint/FlatFormer train on nuScenes (20 epochs).
lr = 1e-3
max_epochs = 20
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=lr, betas=(0.9, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=10, norm_type=2),
)
param_scheduler = [
    dict(type="OneCycleLR", eta_max=lr * 10, pct_start=0.4, total_steps=None, by_epoch=False,
         convert_to_iter_based=True, div_factor=10, final_div_factor=1e4),
]
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
