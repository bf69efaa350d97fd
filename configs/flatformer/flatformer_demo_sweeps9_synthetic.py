# flatformer_demo_synthetic.py with 0.9 s of lidar history: keyframe + 9 sweeps (the world's 4 sweeps per keyframe,
# the previous keyframe's lidar and its 4 sweeps, via the index's prev chain), time lag 0-0.9 s. A pedestrian walks
# ~1.2 m in 0.9 s (3 pillars) but only 0.5 m (about one pillar) in the demo's 0.4 s. The GT database must be built
# with the same sweeps count, under its own prefix:
#   tools/create_data.py gt-database --root data/demo-nuscenes --split synthetic_train --sweeps-num 9 \
#       --load-dim 5 --use-dim 0 1 2 3 --prefix nuscenes_sweeps9
_base_ = ["./flatformer_demo_synthetic.py"]

sweeps_num = 9
point_cloud_range = {{_base_.point_cloud_range}}
class_names = {{_base_.class_names}}
use_dim = {{_base_.use_dim}}
db_sampler = dict(
    data_root={{_base_.data_root}}, info_path="nuscenes_sweeps9_dbinfos_synthetic_train.pkl", rate=1.0,
    sample_groups={{_base_.db_sampler.sample_groups}}, min_points={{_base_.db_sampler.min_points}},
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
