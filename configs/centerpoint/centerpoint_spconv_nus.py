# CenterPoint (voxel 0.1 m) on nuScenes: DynamicVFE -> spconv SECOND encoder -> SECOND/FPN -> CenterHead.
# Grid (nz + 1, ny, nx) = (41, 1024, 1024); the encoder strides x/y by 8 and z 41 -> 21 -> 11 -> 5 -> 2,
# giving a (B, 256, 128, 128) BEV map; heatmap 128 x 128 at 0.8 m (out_size_factor 8), 20 epochs one-cycle.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes.py",
    "../_base_/schedules/cyclic_20e.py",
    "../_base_/models/centerpoint_head_nus.py",
]

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size = [0.1, 0.1, 0.2]
out_size_factor = 8

model = dict(
    type="VoxelDetector",
    point_cloud_range=point_cloud_range,
    voxel_size=voxel_size,
    data_preprocessor=dict(type="Det3DDataPreprocessor", voxel=True, voxel_type="dynamic"),
    voxel_encoder=dict(type="DynamicVFE", in_channels=5, feat_channels=[32, 32], mode="mean"),
    # grid (nz, ny, nx) = (40, 1024, 1024) from the range; SECOND's extra z cell: z_pad=1
    sparse_backbone=dict(type="SparseEncoder", in_channels=32, z_pad=1, base_channels=16,
                         output_channels=128,
                         encoder_channels=[[16, 16], [32, 32, 32], [64, 64, 64], [128, 128]],
                         encoder_paddings=[[1, 1], [1, 1, 1], [1, 1, 1], [[0, 1, 1], 1]]),
    bev_scatter=dict(type="BEVScatter", in_channels=128),  # 2 z levels left: 256 BEV channels
    backbone=dict(type="SECOND", in_channels=256, out_channels=[128, 256], layer_nums=[5, 5], layer_strides=[1, 2]),
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
