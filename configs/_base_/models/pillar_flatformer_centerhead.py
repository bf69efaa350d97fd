# Pillar detector at FlatFormer's nuScenes size: dynamic pillar feature net -> FlatFormer (flattened window
# attention: 9 x 9 windows, groups of 69 tokens, C = 128, 2 blocks of 4 layers: x, x-shift, y, y-shift) -> BEV
# scatter -> SECOND + FPN -> CenterPoint head. 0.3 m pillars over [-54, 54] m: a 360 x 360 BEV grid, heatmap
# 180 x 180 (0.6 m cells, out_size_factor 2). The geometry is written once, on the detector, which passes it to the
# voxelization, the voxel encoder, the sparse backbone (grid) and the head.
_base_ = ["./centerpoint_head.py"]

model = dict(
    type="VoxelDetector",
    point_cloud_range=[-54.0, -54.0, -5.0, 54.0, 54.0, 3.0],
    voxel_size=[0.3, 0.3, 8.0],
    data_preprocessor=dict(type="Det3DDataPreprocessor", voxel=True, voxel_type="dynamic"),
    voxel_encoder=dict(type="DynamicPillarFeatureNet", in_channels=5, feat_channels=[128, 128]),
    sparse_backbone=dict(type="FlatFormer", in_channels=128, embed_dim=128, num_heads=8, num_blocks=2,
                         window_shape=[9, 9], group_size=69),
    bev_scatter=dict(type="BEVScatter", in_channels=128),
    backbone=dict(type="SECOND", in_channels=128, out_channels=[128, 256], layer_nums=[5, 5], layer_strides=[2, 2]),
    neck=dict(type="SECONDFPN", in_channels=[128, 256], out_channels=[256, 256], upsample_strides=[1, 2]),
    head=dict(in_channels=512, bbox_coder=dict(out_size_factor=2)),
)
