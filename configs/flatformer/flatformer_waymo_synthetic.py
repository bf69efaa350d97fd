# FlatFormer on the synthetic world written as Waymo segments, sized for 2 CPU cores like the nuScenes demo
# (flatformer_demo_synthetic.py): 0.4 m pillars over [-51.2, 51.2] m (256 x 256 BEV grid, heatmap 128 x 128), C = 64,
# one block, one head group for Vehicle / Pedestrian / Cyclist, no velocity. Points: the current frame and the
# previous one in the current vehicle frame (x, y, z, tanh(intensity), elongation, time lag: 6 channels).
# No GT-database sampling (the database builder reads nuScenes sweeps only).
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/waymo_synthetic.py",
    "../_base_/schedules/adamw_cosine.py",
    "../_base_/models/pillar_flatformer_centerhead.py",
]

embed_dim = 64
model = dict(
    point_cloud_range={{_base_.point_cloud_range}},
    voxel_size=[0.4, 0.4, 6.0],
    voxel_encoder=dict(in_channels=6, feat_channels=[32, embed_dim]),
    sparse_backbone=dict(in_channels=embed_dim, embed_dim=embed_dim, num_heads=4, num_blocks=1, window_shape=[8, 8],
                         group_size=64),
    bev_scatter=dict(in_channels=embed_dim),
    backbone=dict(in_channels=embed_dim, out_channels=[64, 128], layer_nums=[2, 4]),
    neck=dict(in_channels=[64, 128], out_channels=[64, 64]),
    head=dict(
        in_channels=128,
        class_names={{_base_.class_names}},
        tasks=[dict(num_class=3, class_names={{_base_.class_names}})],
        common_heads=dict(_delete_=True, reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2)),
        head_conv=32,
        train_cfg=dict(code_weights=[1.0] * 8),
        test_cfg=dict(nms_thr=0.7, nms_class_aware=True, post_max_size=300),
    ),
)

# The demo's schedule: 8 epochs, batch 2, AdamW 3e-3 cosine, forward under bfloat16 autocast. One iteration takes
# about 1.1 s on 2 shared CPU cores (two frames, ~140k points): the generator's default 160 training frames
# (8 segments x 20) give 640 iterations (~12 min), 192 frames 768 (~14 min), plus ~1 min of validation.
max_epochs = 8
optim_wrapper = dict(type="AutocastOptimWrapper", dtype="bfloat16", optimizer=dict(lr=3e-3),
                     clip_grad=dict(max_norm=35, norm_type=2))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
