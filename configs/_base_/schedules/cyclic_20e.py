# AdamW with CenterPoint's one-cycle learning rate on nuScenes, 20 epochs: from eta_max / div_factor = 1e-4 up
# to eta_max = 1e-3 over the first 40 % of the iterations, then down to 1e-4 / final_div_factor = 1e-8.
# OneCycleLR sets every step's lr itself; the optimizer's lr is its starting value. Like the cosine schedule it
# has no `end`: the runner spreads the cycle over train_cfg.max_epochs.
eta_max = 1e-3
lr = eta_max / 10
max_epochs = 20
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=lr, betas=(0.9, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=10, norm_type=2),
)
param_scheduler = [
    dict(type="OneCycleLR", eta_max=eta_max, pct_start=0.4, div_factor=10, final_div_factor=1e4, by_epoch=True,
         convert_to_iter_based=True),
]
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
