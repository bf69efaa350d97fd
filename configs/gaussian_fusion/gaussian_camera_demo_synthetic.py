# Camera-only detector through 3D Gaussians (the camera half of gaussian_fusion_demo_synthetic.py), comparable with
# configs/dfa3d/dfa3d_demo_synthetic.py: same cameras, image branch (pretrained by img_pretrain_synthetic.py), BEV
# grid (64 x 64 cells of 1.6 m), BEV backbone / neck, head, augmentation and schedule; the BEV map is the splat of
# Gaussians refined by sampling the six cameras instead of BEV queries lifted by DFA3D.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes_synthetic.py",
    "../_base_/schedules/adamw_cosine.py",
    "../_base_/models/centerpoint_head.py",
]

point_cloud_range = {{_base_.point_cloud_range}}
class_names = {{_base_.class_names}}
embed_dim = 64
img_scale = 1.0                    # the synthetic cameras are already 1/4 resolution (400 x 225)

model = dict(
    type="GaussianFusion",
    point_cloud_range=point_cloud_range,
    voxel_size=[0.8, 0.8, 8.0],    # head cell = 0.8 m x out_size_factor 2 = 1.6 m = one BEV cell (64 x 64)
    data_preprocessor=dict(type="Det3DDataPreprocessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    img_backbone=dict(type="ResNet", widths=[16, 32, 64, 128], depths=[1, 1, 1, 1], out_indices=[1, 2, 3]),
    img_neck=dict(type="ImageFPN", in_channels=[32, 64, 128], out_channels=embed_dim, num_outs=4),
    # training-only perspective supervision, as the DFA3D demo
    perspective_head=dict(type="PerspectiveCenterHead", in_channels=embed_dim, num_classes=10, mid_channels=embed_dim,
                          level=0, stride=8, loss_weight=1.0),
    encoder=dict(type="GaussianEncoder", num_gaussians=3000, embed_dims=embed_dim, num_layers=2,
                 ffn_channels=2 * embed_dim, scale_range=[0.2, 1.6], init_scale=0.8, init_z_range=[-3.0, 1.0],
                 image=dict(num_heads=1, num_levels=4, feat_strides=[8, 16, 32, 64]),
                 sparse=dict(voxel_size=[1.6, 1.6, 2.0], kernel_size=3)),
    bev_splat=dict(type="GaussianBEVSplat", in_channels=embed_dim, out_channels=embed_dim, bev_h=64, bev_w=64),
    image_init=dict(checkpoint="work_dirs/img_pretrain_synthetic/epoch_20.pth"),
    # the DFA3D demo's BEV backbone / neck (BN momentum 0.1 for the short schedule) and head
    backbone=dict(type="SECOND", in_channels=embed_dim, out_channels=[64, 128], layer_nums=[2, 2], layer_strides=[1, 2],
                  norm_momentum=0.1),
    neck=dict(type="SECONDFPN", in_channels=[64, 128], out_channels=[64, 64], upsample_strides=[1, 2],
              norm_momentum=0.1),
    head=dict(
        in_channels=128, bbox_coder=dict(out_size_factor=2),
        tasks=[dict(num_class=10, class_names=class_names)], head_conv=32,
        train_cfg=dict(code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]),
        test_cfg=dict(nms_class_aware=True, post_max_size=300),
    ),
)

# The keyframe lidar is loaded for the global augmentation (which moves points and boxes together) and not packed.
train_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=5, use_dim=[0, 1, 2, 3]),
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeMultiViewImages", scale=img_scale),
    dict(type="LoadAnnotations3D"),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3925, 0.3925], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.0, 0.0, 0.0]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.0),
    dict(type="SyncLidar2ImgWithAug"),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes=class_names),
    dict(type="PackMultiViewInputs", keys=["img", "gt_bboxes_3d", "gt_labels_3d"]),
]
test_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeMultiViewImages", scale=img_scale),
    dict(type="PackMultiViewInputs", keys=["img"]),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# The DFA3D demo's schedule (12 epochs x 100 iterations, batch 2)
max_epochs = 12
optim_wrapper = dict(optimizer=dict(lr=2e-3), clip_grad=dict(max_norm=35, norm_type=2))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
