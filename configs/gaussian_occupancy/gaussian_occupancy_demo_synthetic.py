# Camera-only semantic occupancy with 3D Gaussians (GaussianFormer-2's probabilistic splat), sized for 2 CPU cores,
# on the synthetic world's Occ3D-layout labels (tools/create_data.py synthetic-nuscenes --occupancy): 200 x 200 x 16
# voxels of 0.4 m over [-40, 40] x [-40, 40] x [-1, 5.4] m in the keyframe's ego frame, 18 classes (17 = free).
# Camera branch: the DFA3D demo's small ResNet + FPN (C = 64), pretrained by configs/dfa3d/img_pretrain_synthetic.py.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes_synthetic.py",
    "../_base_/schedules/adamw_cosine.py",
]

occ_range = [-40.0, -40.0, -1.0, 40.0, 40.0, 5.4]
embed_dim = 64
img_scale = 1.0                    # the synthetic cameras are already 1/4 resolution (400 x 225)

model = dict(
    type="GaussianOccupancy",
    point_cloud_range=occ_range,
    voxel_size=[0.4, 0.4, 0.4],
    grid_frame="ego",
    data_preprocessor=dict(type="Det3DDataPreprocessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    img_backbone=dict(type="ResNet", widths=[16, 32, 64, 128], depths=[1, 1, 1, 1], out_indices=[1, 2, 3]),
    img_neck=dict(type="ImageFPN", in_channels=[32, 64, 128], out_channels=embed_dim, num_outs=4),
    # 4096 Gaussians on a Halton set over the grid, scales 0.1-0.6 m (a splat cube of at most 11^3 voxels at k = 3),
    # 9 key points (centre, +-2 sigma along the axes, 2 learned) sampled in the six cameras, sparse conv on their
    # 1.2 m voxels, steps of at most 1.5 m (x, y) / 0.5 m (z) per layer
    encoder=dict(type="GaussianEncoder", num_gaussians=4096, embed_dims=embed_dim, num_layers=3,
                 ffn_channels=2 * embed_dim, scale_range=[0.1, 0.6], init_scale=0.4, max_step=[1.5, 1.5, 0.5],
                 image=dict(num_heads=1, num_levels=4, feat_strides=[8, 16, 32, 64]),
                 sparse=dict(voxel_size=[1.2, 1.2, 1.2], kernel_size=3)),
    occ_head=dict(type="GaussianOccupancyHead", in_channels=embed_dim, num_classes=18, k=3.0, mask="mask_camera",
                  loss_ce_weight=1.0, loss_lovasz_weight=1.0),
    image_init=dict(checkpoint="work_dirs/img_pretrain_synthetic/epoch_20.pth"),
)

# No 3D augmentation: the labels are a fixed grid in the ego frame.
train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeMultiViewImages", scale=img_scale),
    dict(type="LoadOccupancy"),
    dict(type="PackMultiViewInputs", keys=["img"]),  # packs gt_occ too
]
test_pipeline = train_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type="OccupancyMetric")
test_evaluator = val_evaluator

max_epochs = 8
optim_wrapper = dict(optimizer=dict(lr=2e-3), clip_grad=dict(max_norm=35, norm_type=2))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
