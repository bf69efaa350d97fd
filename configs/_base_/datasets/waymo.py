# Real Waymo Open Dataset (v1 TFRecords) lidar detection of Vehicle, Pedestrian, Cyclist, scored by WaymoMetric
# (LEVEL_1 / LEVEL_2 mAP and mAPH, the official breakdowns; the submission file in the Objects format).
# Layout: data/waymo/{training,validation}/segment-*.tfrecord. Build the per-frame indexes first:
#   python tools/create_data.py waymo --root data/waymo --format v1 --split training --workers 8
#   python tools/create_data.py waymo --root data/waymo --format v1 --split validation --workers 8
# (v2 parquet trees work the same with --format v2). Points: both returns of the five lidars, x, y, z,
# tanh(intensity), elongation, in the vehicle frame; one frame (sweeps_num previous frames add a time-lag column).
dataset_type = "WaymoDataset"
data_root = "data/waymo/"
class_names = ["Vehicle", "Pedestrian", "Cyclist"]
point_cloud_range = [-74.88, -74.88, -2.0, 74.88, 74.88, 4.0]
use_dim = [0, 1, 2, 3, 4]  # x, y, z, intensity, elongation

train_pipeline = [
    dict(type="LoadWaymoPoints", use_dim=use_dim),
    dict(type="LoadAnnotations3D", with_velocity=False),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.5, 0.5, 0.0]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes=class_names),
    dict(type="PointShuffle"),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
test_pipeline = [
    dict(type="LoadWaymoPoints", use_dim=use_dim),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]

train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    # load_interval=5 trains on every 5th frame (the common "20 % of Waymo" setting); 1 = every frame
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="waymo_infos_training.pkl", load_interval=1,
                 pipeline=train_pipeline, metainfo=dict(classes=class_names), test_mode=False),
)
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="waymo_infos_validation.pkl",
                 pipeline=test_pipeline, metainfo=dict(classes=class_names), test_mode=True),
)
test_dataloader = val_dataloader
# ground truth from the samples (every label of each frame); WaymoMetric(gt_bin=...) reads Waymo's gt.bin instead
val_evaluator = dict(type="WaymoMetric")
test_evaluator = val_evaluator
