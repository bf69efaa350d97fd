# Multi-camera BEV detector lifting image features with DFA3D (3D deformable attention on the depth-expanded
# feature), sized for 2 CPU cores, on the synthetic world's 6 cameras (400 x 225, 1/4 of nuScenes).
# Variants: dfa2d_demo_synthetic.py (2D deformable attention, the paper's baseline) and
# dfa3d_gtdepth_demo_synthetic.py (lidar ground-truth depth fed to DFA3D).
# All three start from the image branch pretrained by img_pretrain_synthetic.py (train that first; README.md).
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes_synthetic.py",
    "../_base_/schedules/adamw_cosine.py",
    "../_base_/models/centerpoint_head_nus.py",
]

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
bev_size = 64                      # 64 x 64 BEV queries, 1.6 m cells
voxel_size = [0.8, 0.8, 8.0]       # head cell = voxel_size * out_size_factor = 1.6 m (64 x 64 heatmap)
out_size_factor = 2
depth_bins = [2.0, 58.0, 0.5]      # (d_min, d_max, step) as BEVFormer-DFA3D: 112 bins
depth_range = depth_bins[:2]       # lidar depths kept for supervision
embed_dim = 64
img_scale = 1.0                    # the synthetic cameras are already 1/4 resolution (400 x 225)
img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
class_names = {{_base_.class_names}}
attn_type = "dfa3d"
depth_source = "pred"

model = dict(
    type="CameraDetector",
    point_cloud_range=point_cloud_range,
    voxel_size=voxel_size,
    data_preprocessor=dict(type="Det3DDataPreprocessor", **img_norm),
    img_backbone=dict(type="ResNet", widths=[16, 32, 64, 128], depths=[1, 1, 1, 1], out_indices=[1, 2, 3]),
    img_neck=dict(type="ImageFPN", in_channels=[32, 64, 128], out_channels=embed_dim, num_outs=4),  # strides 8-64
    depth_head=dict(type="DepthHead", in_channels=embed_dim, mid_channels=embed_dim, depth_bins=depth_bins,
                    loss_weight=1.0),
    # training-only perspective supervision (projected box centres on the stride-8 image features): the image
    # backbone is trained from scratch, and the BEV loss alone reaches it only through the sparse samples
    perspective_head=dict(type="PerspectiveCenterHead", in_channels=embed_dim, num_classes=10, mid_channels=embed_dim,
                          level=0, stride=8, loss_weight=1.0),
    # pillar anchors where the synthetic objects are (box bottoms -2.9..-0.7 m, car tops up to ~1 m in the lidar
    # frame; the default z range [-5, 3) puts 2 of 4 anchors under the ground / above the cars), and small initial
    # BEV queries so the map the BEV backbone sees is image-driven from the start, not a per-cell constant
    bev_encoder=dict(type="BEVLiftingEncoder", bev_h=bev_size, bev_w=bev_size,
                     embed_dims=embed_dim, num_layers=1, ffn_channels=2 * embed_dim, num_z_anchors=4, num_heads=4,
                     num_levels=4, num_points=2, attn_type=attn_type, depth_bins=depth_bins,
                     anchor_z_range=[-3.0, 1.0], query_init_std=0.02),
    depth_source=depth_source,
    # ResNet, FPN, depth head and perspective head from the image-branch pretraining (the stand-in for BEVFormer's
    # ImageNet / FCOS3D weights); set image_init=None to train from scratch
    image_init=dict(checkpoint="work_dirs/img_pretrain_synthetic/epoch_20.pth"),
    backbone=dict(type="SECOND", in_channels=embed_dim, out_channels=[64, 128], layer_nums=[2, 2],
                  layer_strides=[1, 2], norm_momentum=0.1),
    # BN momentum 0.1, not the lidar default 0.01: over a schedule of ~1000 iterations the running statistics of
    # 0.01 lag the drifting lifted BEV features and the eval-mode model loses what the train-mode model fits
    neck=dict(type="SECONDFPN", in_channels=[64, 128], out_channels=[64, 64], upsample_strides=[1, 2],
              norm_momentum=0.1),
    head=dict(
        type="CenterHead", in_channels=128, common_heads={{_base_.common_heads}},
        tasks=[dict(num_class=10, class_names=class_names)], share_conv_channel=64, head_conv=32,
        bbox_coder=dict(out_size_factor=out_size_factor),
        train_cfg=dict(max_objs=500, gaussian_overlap=0.1, min_radius=2,
                       code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]),
        test_cfg=dict(post_center_limit_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], score_threshold=0.1,
                      pre_topk=500, nms_type="rotate", nms_thr=0.2, nms_class_aware=True, pre_max_size=1000,
                      post_max_size=300, max_per_img=500),
    ),
)

# Keyframe lidar only feeds the depth targets (and nothing else): sweeps are not aligned with the images.
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# The lidar demo's budget in iterations (batch 2); the three variants share it.
max_epochs = 12
optim_wrapper = dict(optimizer=dict(lr=2e-3), clip_grad=dict(max_norm=35, norm_type=2))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
