# FlatFormer on nuScenes: the pillar FlatFormer base as it is (0.3 m pillars over [-54, 54] m, 360 x 360 BEV,
# six CenterPoint class groups), keyframe + 9 sweeps, 20 epochs one-cycle. The pipelines' range filters follow the
# model's range (wider than the dataset base's [-51.2, 51.2] m).
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes.py",
    "../_base_/schedules/cyclic_20e.py",
    "../_base_/models/pillar_flatformer_centerhead.py",
]

point_cloud_range = {{_base_.model.point_cloud_range}}
class_names = {{_base_.class_names}}

train_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=5, use_dim={{_base_.use_dim}}),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num={{_base_.sweeps_num}}, load_dim=5, use_dim={{_base_.use_dim}}),
    dict(type="LoadAnnotations3D"),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3925, 0.3925], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.2, 0.2, 0.2]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes=class_names),
    dict(type="PointShuffle"),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
test_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=5, use_dim={{_base_.use_dim}}),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num={{_base_.sweeps_num}}, load_dim=5, use_dim={{_base_.use_dim}}),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
