# Real nuScenes (v1.0-trainval) lidar detection: 10 sweeps (keyframe + 9 previous), official val split.
# Build the index first:  python tools/create_data.py nuscenes --root data/nuscenes --version v1.0-trainval
# (writes nuscenes_infos_train.pkl / nuscenes_infos_val.pkl next to the tables).
# No GT-sampling / CBGS here (not implemented), so absolute numbers sit below the papers' tables.
dataset_type = "NuScenesDataset"
data_root = "data/nuscenes/"
version = "v1.0-trainval"
class_names = ["car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle",
               "bicycle", "traffic_cone", "barrier"]
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
sweeps_num = 9  # previous sweeps -> 10 sweeps in total
use_dim = [0, 1, 2, 3]  # + time lag appended by the sweep loader -> 5 channels

train_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=5, use_dim=use_dim),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num=sweeps_num, load_dim=5, use_dim=use_dim),
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
    dict(type="LoadPointsFromFile", load_dim=5, use_dim=use_dim),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num=sweeps_num, load_dim=5, use_dim=use_dim),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]

train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="nuscenes_infos_train.pkl",
                 pipeline=train_pipeline, metainfo=dict(classes=class_names), test_mode=False),
)
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="nuscenes_infos_val.pkl",
                 pipeline=test_pipeline, metainfo=dict(classes=class_names), test_mode=True),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="NuScenesMetric", data_root=data_root, version=version, eval_set="val")
test_evaluator = val_evaluator
