# CenterPoint-style voxel detector on spconv (SECOND sparse 3D encoder) with the same data, head and
# schedule as configs/flatformer/flatformer_demo_synthetic.py; the baseline to compare FlatFormer with.
# 3D voxels 0.2 x 0.2 x 0.25 m -> sparse grid (nz, ny, nx) = (32 + 1, 512, 512). The encoder strides
# x/y by 8 and compresses z 33 -> 17 -> 9 -> 4 -> 1, so its BEV map is (B, 128, 64, 64) at 1.6 m.
# SECOND (strides 1, 2) + FPN (upsample 2, 4) bring it to 128 x 128 = out_size_factor 4 (0.8 m cells,
# the FlatFormer demo's heatmap).
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes_synthetic.py",
    "../_base_/schedules/adamw_cosine.py",
    "../_base_/models/centerpoint_head_nus.py",
]

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size = [0.2, 0.2, 0.25]
out_size_factor = 4                   # 8 (sparse encoder) / 2 (FPN upsampling of the stride-1 branch)
vfe_channels = 32

model = dict(
    type="VoxelDetector",
    point_cloud_range=point_cloud_range,
    voxel_size=voxel_size,
    data_preprocessor=dict(type="Det3DDataPreprocessor", voxel=True, voxel_type="dynamic"),
    voxel_encoder=dict(type="DynamicVFE", in_channels=5, feat_channels=[vfe_channels, vfe_channels], mode="mean"),
    # grid (nz, ny, nx) = (32, 512, 512) from the range; SECOND's extra z cell: z_pad=1
    sparse_backbone=dict(type="SparseEncoder", in_channels=vfe_channels, z_pad=1,
                         base_channels=16, output_channels=128,
                         encoder_channels=[[16], [32, 32, 32], [64, 64, 64], [64, 64, 64]],
                         encoder_paddings=[[1], [1, 1, 1], [1, 1, 1], [[0, 1, 1], 1, 1]]),
    bev_scatter=dict(type="BEVScatter", in_channels=128),
    backbone=dict(type="SECOND", in_channels=128, out_channels=[64, 128], layer_nums=[2, 4],
                  layer_strides=[1, 2]),
    neck=dict(type="SECONDFPN", in_channels=[64, 128], out_channels=[64, 64], upsample_strides=[2, 4]),
    head=dict(
        type="CenterHead", in_channels=128, common_heads={{_base_.common_heads}},
        tasks=[dict(num_class=10, class_names={{_base_.class_names}})],  # one class group, as the FlatFormer demo
        share_conv_channel=64, head_conv=32,
        bbox_coder=dict(out_size_factor=out_size_factor),
        train_cfg=dict(max_objs=500, gaussian_overlap=0.1, min_radius=2,
                       code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2]),
        test_cfg=dict(post_center_limit_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], score_threshold=0.1,
                      pre_topk=500, nms_type="rotate", nms_thr=0.2, nms_class_aware=True, pre_max_size=1000,
                      post_max_size=300,
                      max_per_img=500),
    ),
)

max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
