# FlatFormer on the Waymo Open Dataset as the paper sets it up: 0.32 m pillars over [-74.88, 74.88] m
# (468 x 468 BEV grid; z from -2 to 4 m in the vehicle frame), the pillar FlatFormer base (C = 128, 2 blocks,
# 9 x 9 windows, groups of 69), one frame with x, y, z, tanh(intensity), elongation, and a CenterPoint head
# with one group for Vehicle / Pedestrian / Cyclist and no velocity (the Waymo metric scores none).
# 24 epochs AdamW cosine; LEVEL_1 / LEVEL_2 mAP and mAPH from WaymoMetric.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/waymo.py",
    "../_base_/schedules/adamw_cosine.py",
    "../_base_/models/pillar_flatformer_centerhead.py",
]

model = dict(
    point_cloud_range={{_base_.point_cloud_range}},
    voxel_size=[0.32, 0.32, 6.0],
    head=dict(
        class_names={{_base_.class_names}},
        tasks=[dict(num_class=3, class_names={{_base_.class_names}})],
        common_heads=dict(_delete_=True, reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2)),
        train_cfg=dict(code_weights=[1.0] * 8),
        test_cfg=dict(post_center_limit_range=[-80.0, -80.0, -10.0, 80.0, 80.0, 10.0], nms_thr=0.7,
                      pre_max_size=4096, post_max_size=500),
    ),
)

max_epochs = 24
optim_wrapper = dict(optimizer=dict(lr=3e-3))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
