# DFA3D camera detector at nuScenes scale (BEVFormer-DFA3D-like sizes, without temporal self-attention):
# 6 cameras at 1/2 resolution (800 x 450), ResNet-18 trained from scratch (no pretrained weights), FPN 256 at
# strides 8/16/32/64, 112 depth bins over [2, 58) m, 200 x 200 BEV queries (0.512 m cells), 3 encoder layers,
# 8 heads, 4 Z anchors x 2 points per level; CenterPoint head in 6 class groups on the 200 x 200 BEV map.
# Needs a GPU to train in reasonable time (CPU: dfa3d_demo_synthetic.py). Index: tools/create_data.py nuscenes.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes.py",
    "../_base_/schedules/adamw_cosine.py",
    "../_base_/models/centerpoint_head_nus.py",
]

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
bev_size = 200
voxel_size = [0.128, 0.128, 8.0]   # head cell = 0.128 * 4 = 0.512 m = one BEV query
out_size_factor = 4
depth_bins = [2.0, 58.0, 0.5]
depth_range = depth_bins[:2]
embed_dim = 256
img_scale = 0.5                    # 1600 x 900 -> 800 x 450
img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
class_names = {{_base_.class_names}}

model = dict(
    type="CameraDetector",
    point_cloud_range=point_cloud_range,
    voxel_size=voxel_size,
    data_preprocessor=dict(type="Det3DDataPreprocessor", **img_norm),
    img_backbone=dict(type="ResNet", widths=[64, 128, 256, 512], depths=[2, 2, 2, 2], out_indices=[1, 2, 3]),
    img_neck=dict(type="ImageFPN", in_channels=[128, 256, 512], out_channels=embed_dim, num_outs=4),
    depth_head=dict(type="DepthHead", in_channels=embed_dim, mid_channels=128, depth_bins=depth_bins, loss_weight=1.0),
    bev_encoder=dict(type="BEVLiftingEncoder", bev_h=bev_size, bev_w=bev_size,
                     embed_dims=embed_dim, num_layers=3, ffn_channels=512, num_z_anchors=4, num_heads=8,
                     num_levels=4, num_points=2, attn_type="dfa3d", depth_bins=depth_bins),
    depth_source="pred",
    backbone=dict(type="SECOND", in_channels=embed_dim, out_channels=[128, 256], layer_nums=[3, 5],
                  layer_strides=[1, 2]),
    neck=dict(type="SECONDFPN", in_channels=[128, 256], out_channels=[128, 128], upsample_strides=[1, 2]),
    head=dict(
        type="CenterHead", in_channels=256, tasks={{_base_.tasks}}, common_heads={{_base_.common_heads}},
        share_conv_channel=64, head_conv=64,
        bbox_coder=dict(out_size_factor=out_size_factor),
        train_cfg=dict(max_objs=500, gaussian_overlap=0.1, min_radius=2,
                       code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2]),
        test_cfg=dict(post_center_limit_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], score_threshold=0.1,
                      pre_topk=500, nms_type="rotate", nms_thr=0.2, pre_max_size=1000, post_max_size=83,
                      max_per_img=500),
    ),
)

train_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=5, use_dim=[0, 1, 2, 3]),
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeMultiViewImages", scale=img_scale),
    dict(type="LoadAnnotations3D"),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3925, 0.3925], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.0, 0.0, 0.0]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.0),
    dict(type="SyncLidar2ImgWithAug"),
    dict(type="MultiViewDepthMap", stride=8, depth_range=depth_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes=class_names),
    dict(type="PackMultiViewInputs", keys=["img", "gt_bboxes_3d", "gt_labels_3d", "gt_depth"]),
]
test_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeMultiViewImages", scale=img_scale),
    dict(type="PackMultiViewInputs", keys=["img"]),
]
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# BEVFormer's schedule: a longer, gentler warm-up (500 iterations from lr / 3) and a cosine down to lr / 1000.
max_epochs = 24
optim_wrapper = dict(optimizer=dict(lr=2e-4), clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type="LinearLR", start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, eta_min_ratio=1e-3, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
