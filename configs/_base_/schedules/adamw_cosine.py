# AdamW with linear warm-up (first 50 iterations from 0.1 x lr) and cosine decay to eta_min_ratio x lr, stepped
# per iteration. The cosine has no `end`: the runner ends it at train_cfg.max_epochs, so a config changes the
# schedule by setting lr (optim_wrapper.optimizer.lr) and train_cfg.max_epochs only.
lr = 2e-3
max_epochs = 10
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=lr, betas=(0.9, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=10, norm_type=2),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, eta_min_ratio=1e-2, convert_to_iter_based=True),
]
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
