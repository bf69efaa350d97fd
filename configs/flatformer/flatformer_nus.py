# FlatFormer on nuScenes: 0.3 m pillars over [-54, 54] m (360 x 360 BEV), 9 x 9 windows, groups of 69
# tokens, embed 128, 2 blocks (each block = 4 layers: x, x-shift, y, y-shift), CenterHead on a
# 180 x 180 heatmap (0.6 m cells, out_size_factor 2). 20 epochs one-cycle.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes.py",
    "../_base_/schedules/cyclic_20e.py",
    "../_base_/models/centerpoint_head_nus.py",
]

point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
voxel_size = [0.3, 0.3, 8.0]
out_size_factor = 2
embed_dim = 128
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

model = dict(
    type="VoxelDetector",
    point_cloud_range=point_cloud_range,
    voxel_size=voxel_size,
    data_preprocessor=dict(type="Det3DDataPreprocessor", voxel=True, voxel_type="dynamic"),
    voxel_encoder=dict(type="DynamicPillarFeatureNet", in_channels=5, feat_channels=[embed_dim, embed_dim]),
    sparse_backbone=dict(type="FlatFormer", in_channels=embed_dim, embed_dim=embed_dim, num_heads=8, num_blocks=2,
                         window_shape=[9, 9], group_size=69),
    bev_scatter=dict(type="BEVScatter", in_channels=embed_dim),
    backbone=dict(type="SECOND", in_channels=embed_dim, out_channels=[128, 256], layer_nums=[5, 5],
                  layer_strides=[2, 2]),
    neck=dict(type="SECONDFPN", in_channels=[128, 256], out_channels=[256, 256], upsample_strides=[1, 2]),
    head=dict(
        type="CenterHead", in_channels=512, tasks={{_base_.tasks}}, common_heads={{_base_.common_heads}},
        share_conv_channel=64, head_conv=64,
        bbox_coder=dict(out_size_factor=out_size_factor),
        train_cfg=dict(max_objs=500, gaussian_overlap=0.1, min_radius=2,
                       code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2]),
        test_cfg=dict(post_center_limit_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], score_threshold=0.1,
                      pre_topk=500, nms_type="rotate", nms_thr=0.2, pre_max_size=1000, post_max_size=83,
                      max_per_img=500),
    ),
)
