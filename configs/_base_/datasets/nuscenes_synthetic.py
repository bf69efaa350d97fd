# The synthetic world (a real nuScenes v1.0 tree written by tools/create_data.py synthetic-nuscenes)
# read through the same NuScenesDataset and scored by the official devkit on the custom val split.
dataset_type = "NuScenesDataset"
data_root = "data/demo-nuscenes/"
version = "v1.0-trainval"
class_names = ["car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle",
               "bicycle", "traffic_cone", "barrier"]
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
sweeps_num = 4  # keyframe + 4 previous sweeps (0.1 s apart in the default world): motion cues for velocity
use_dim = [0, 1, 2, 3]  # + time lag appended by the sweep loader -> 5 channels

# GT-database sampling (copy-paste): `tools/create_data.py gt-database --root <data_root> --split synthetic_train
# --sweeps-num 4 --load-dim 5 --use-dim 0 1 2 3` writes the database (make demo does); counts as CenterPoint's.
db_sampler = dict(
    data_root=data_root, info_path="nuscenes_dbinfos_synthetic_train.pkl", rate=1.0,
    sample_groups=dict(car=2, truck=3, construction_vehicle=7, bus=4, trailer=6, barrier=2, motorcycle=6,
                       bicycle=6, pedestrian=2, traffic_cone=2),
    min_points={name: 5 for name in class_names},
    classes=class_names)
train_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=5, use_dim=use_dim),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num=sweeps_num, load_dim=5, use_dim=use_dim),
    dict(type="LoadAnnotations3D"),
    dict(type="ObjectSample", db_sampler=db_sampler),
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
    batch_size=2, num_workers=1, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="nuscenes_infos_synthetic_train.pkl",
                 pipeline=train_pipeline, metainfo=dict(classes=class_names), test_mode=False),
)
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="nuscenes_infos_synthetic_val.pkl",
                 pipeline=test_pipeline, metainfo=dict(classes=class_names), test_mode=True),
)
test_dataloader = val_dataloader
# attributes of predicted boxes: the most frequent static / moving attribute of each class in the train split
# and each class's recall by distance from the ego ([0, 20), [20, 35), 35+ m; 2 m matching, score >= 0.3) and
# velocity errors of static and moving GT boxes (a zero-velocity model hides behind the devkit's mean vel_err)
val_evaluator = dict(type="NuScenesMetric", data_root=data_root, version=version, eval_set="synthetic_val",
                     attribute_prior="nuscenes_infos_synthetic_train.pkl", recall_bands=[20, 35],
                     velocity_by_motion=True)
test_evaluator = val_evaluator
