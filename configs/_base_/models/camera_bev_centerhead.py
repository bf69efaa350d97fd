# Multi-camera BEV detector at nuScenes scale (BEVFormer-DFA3D-like sizes, without temporal self-attention):
# ResNet-18 (from scratch) -> FPN 256 at strides 8 / 16 / 32 / 64 -> depth head (112 bins over [2, 58) m) ->
# 200 x 200 BEV queries lifted by DFA3D spatial cross-attention (3 layers, 8 heads, 4 z anchors x 2 points per
# level) -> SECOND + FPN -> CenterPoint head on the 200 x 200 BEV map. The geometry is written once, on the
# detector: the BEV encoder takes point_cloud_range, the head point_cloud_range and voxel_size (head cell =
# 0.128 m x out_size_factor 4 = 0.512 m = one BEV query).
_base_ = ["./centerpoint_head.py"]

model = dict(
    type="CameraDetector",
    point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0],
    voxel_size=[0.128, 0.128, 8.0],
    data_preprocessor=dict(type="Det3DDataPreprocessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    img_backbone=dict(type="ResNet", widths=[64, 128, 256, 512], depths=[2, 2, 2, 2], out_indices=[1, 2, 3]),
    img_neck=dict(type="ImageFPN", in_channels=[128, 256, 512], out_channels=256, num_outs=4),
    depth_head=dict(type="DepthHead", in_channels=256, mid_channels=128, depth_bins=[2.0, 58.0, 0.5], loss_weight=1.0),
    bev_encoder=dict(type="BEVLiftingEncoder", bev_h=200, bev_w=200, embed_dims=256, num_layers=3, ffn_channels=512,
                     num_z_anchors=4, num_heads=8, num_levels=4, num_points=2, attn_type="dfa3d",
                     depth_bins=[2.0, 58.0, 0.5]),
    depth_source="pred",
    backbone=dict(type="SECOND", in_channels=256, out_channels=[128, 256], layer_nums=[3, 5], layer_strides=[1, 2]),
    neck=dict(type="SECONDFPN", in_channels=[128, 256], out_channels=[128, 128], upsample_strides=[1, 2]),
    head=dict(in_channels=256, bbox_coder=dict(out_size_factor=4)),
)
