# The synthetic world written as Waymo v1 segments (tools/create_data.py synthetic-waymo), read through the same
# WaymoDataset and scored by WaymoMetric (LEVEL_1 / LEVEL_2 mAP, mAPH) on the validation segments.
#   python tools/create_data.py synthetic-waymo --out data/synthetic-waymo
#   python tools/create_data.py waymo --root data/synthetic-waymo/v1 --format v1 --split training
#   python tools/create_data.py waymo --root data/synthetic-waymo/v1 --format v1 --split validation
# The world's street spans about +-25 m across and its labels reach 50 m: the demo's [-51.2, 51.2] m range.
dataset_type = "WaymoDataset"
data_root = "data/synthetic-waymo/v1/"
class_names = ["Vehicle", "Pedestrian", "Cyclist"]
point_cloud_range = [-51.2, -51.2, -2.0, 51.2, 51.2, 4.0]
use_dim = [0, 1, 2, 3, 4]  # x, y, z, intensity, elongation (+ time lag appended by the sweep loader -> 6 channels)
sweeps_num = 1  # the current frame + the previous one (0.1 s earlier), moved into the current vehicle frame

train_pipeline = [
    dict(type="LoadWaymoPoints", use_dim=use_dim, sweeps_num=sweeps_num),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num=sweeps_num, load_dim=5, use_dim=use_dim, remove_close=False),
    dict(type="LoadAnnotations3D", with_velocity=False),
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
    dict(type="LoadWaymoPoints", use_dim=use_dim, sweeps_num=sweeps_num),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num=sweeps_num, load_dim=5, use_dim=use_dim, remove_close=False),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]

train_dataloader = dict(
    batch_size=2, num_workers=1, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="waymo_infos_training.pkl", max_sweeps=sweeps_num,
                 pipeline=train_pipeline, metainfo=dict(classes=class_names), test_mode=False),
)
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="waymo_infos_validation.pkl",
                 max_sweeps=sweeps_num, pipeline=test_pipeline, metainfo=dict(classes=class_names), test_mode=True),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="WaymoMetric")
test_evaluator = val_evaluator
