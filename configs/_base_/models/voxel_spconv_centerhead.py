# Voxel detector on spconv at CenterPoint's nuScenes size (voxel 0.1 m): DynamicVFE (mean) -> SECOND sparse 3D
# encoder -> BEV scatter -> SECOND + FPN -> CenterPoint head. Grid (nz, ny, nx) = (40, 1024, 1024) plus SECOND's
# extra z cell (z_pad=1); the encoder strides x / y by 8 and z 41 -> 21 -> 11 -> 5 -> 2, so the BEV map is
# 2 z levels x 128 = 256 channels at 128 x 128 (0.8 m cells, out_size_factor 8). The geometry is written once, on
# the detector.
_base_ = ["./centerpoint_head.py"]

model = dict(
    type="VoxelDetector",
    point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0],
    voxel_size=[0.1, 0.1, 0.2],
    data_preprocessor=dict(type="Det3DDataPreprocessor", voxel=True, voxel_type="dynamic"),
    voxel_encoder=dict(type="DynamicVFE", in_channels=5, feat_channels=[32, 32], mode="mean"),
    sparse_backbone=dict(type="SparseEncoder", in_channels=32, z_pad=1, base_channels=16, output_channels=128,
                         encoder_channels=[[16, 16], [32, 32, 32], [64, 64, 64], [128, 128]],
                         encoder_paddings=[[1, 1], [1, 1, 1], [1, 1, 1], [[0, 1, 1], 1]]),
    bev_scatter=dict(type="BEVScatter", in_channels=128),
    backbone=dict(type="SECOND", in_channels=256, out_channels=[128, 256], layer_nums=[5, 5], layer_strides=[1, 2]),
    neck=dict(type="SECONDFPN", in_channels=[128, 256], out_channels=[256, 256], upsample_strides=[1, 2]),
    head=dict(in_channels=512, bbox_coder=dict(out_size_factor=8)),
)
