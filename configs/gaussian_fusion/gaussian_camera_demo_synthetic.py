# Camera-only detector through 3D Gaussians (the camera half of gaussian_fusion_demo_synthetic.py), comparable with
# configs/dfa3d/dfa3d_demo_synthetic.py, which it inherits: same cameras, image branch (pretrained by
# img_pretrain_synthetic.py), perspective supervision, BEV grid (64 x 64 cells of 1.6 m), BEV backbone / neck,
# head, augmentation and schedule; the BEV map is the splat of Gaussians refined by sampling the six cameras instead
# of BEV queries lifted by DFA3D (no depth head: the Gaussians carry depth as their positions).
_base_ = ["../dfa3d/dfa3d_demo_synthetic.py"]

point_cloud_range = {{_base_.point_cloud_range}}
class_names = {{_base_.class_names}}
embed_dim = 64                     # the DFA3D demo's C (arithmetic below needs a literal)
img_scale = {{_base_.img_scale}}

model = dict(
    _delete_=True,
    type="GaussianFusion",
    point_cloud_range=point_cloud_range,
    encoder=dict(type="GaussianEncoder", num_gaussians=3000, embed_dims=embed_dim, num_layers=2,
                 ffn_channels=2 * embed_dim, scale_range=[0.2, 1.6], init_scale=0.8, init_z_range=[-3.0, 1.0],
                 image=dict(num_heads=1, num_levels=4, feat_strides=[8, 16, 32, 64]),
                 sparse=dict(voxel_size=[1.6, 1.6, 2.0], kernel_size=3)),
    bev_splat=dict(type="GaussianBEVSplat", in_channels=embed_dim, out_channels=embed_dim, bev_h=64, bev_w=64),
    voxel_size={{_base_.model.voxel_size}},
    data_preprocessor={{_base_.model.data_preprocessor}},
    img_backbone={{_base_.model.img_backbone}},
    img_neck={{_base_.model.img_neck}},
    perspective_head={{_base_.model.perspective_head}},
    image_init={{_base_.model.image_init}},
    backbone={{_base_.model.backbone}},
    neck={{_base_.model.neck}},
    head={{_base_.model.head}},
)

# The DFA3D demo's pipelines (test pipeline inherited) without the depth targets: no depth head here. The keyframe
# lidar is loaded for the global augmentation (which moves points and boxes together) and not packed.
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
