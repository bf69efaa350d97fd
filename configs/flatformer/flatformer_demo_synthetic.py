# FlatFormer pillar detector with a CenterPoint head, sized for 2 CPU cores, on the synthetic world.
# This is what `make demo` trains and evaluates.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes_synthetic.py",
    "../_base_/schedules/adamw_cosine.py",
    "../_base_/models/centerpoint_head_nus.py",
]

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size = [0.4, 0.4, 8.0]          # pillars: 256 x 256 BEV grid
out_size_factor = 2                   # heatmap cell 0.8 m (128 x 128)
embed_dim = 64

model = dict(
    type="VoxelDetector",
    point_cloud_range=point_cloud_range,
    voxel_size=voxel_size,
    data_preprocessor=dict(type="Det3DDataPreprocessor", voxel=True, voxel_type="dynamic"),
    voxel_encoder=dict(type="DynamicPillarFeatureNet", in_channels=5, feat_channels=[32, embed_dim]),
    sparse_backbone=dict(type="FlatFormer", in_channels=embed_dim, embed_dim=embed_dim, num_heads=4, num_blocks=1,
                         window_shape=[8, 8], group_size=64),
    bev_scatter=dict(type="BEVScatter", in_channels=embed_dim),
    backbone=dict(type="SECOND", in_channels=embed_dim, out_channels=[64, 128], layer_nums=[2, 4],
                  layer_strides=[2, 2]),
    neck=dict(type="SECONDFPN", in_channels=[64, 128], out_channels=[64, 64], upsample_strides=[1, 2]),
    head=dict(
        type="CenterHead", in_channels=128, common_heads={{_base_.common_heads}},
        # one class group (10 heatmap channels, shared regression) instead of CenterPoint's six: the six
        # groups' 36 extra 3x3 convs at 128 x 128 would triple the head cost on a CPU
        tasks=[dict(num_class=10, class_names={{_base_.class_names}})],
        share_conv_channel=64, head_conv=32,
        bbox_coder=dict(out_size_factor=out_size_factor),
        train_cfg=dict(max_objs=500, gaussian_overlap=0.1, min_radius=2,
                       code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        test_cfg=dict(post_center_limit_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], score_threshold=0.1,
                      pre_topk=500, nms_type="rotate", nms_thr=0.2, nms_class_aware=True, pre_max_size=1000, post_max_size=300,
                      max_per_img=500,
                      # boxes predicted to move >= 1 m/s take the heading (of the regressed pi-pair) that points along
                      # their velocity: front and back of a truck look alike to a lidar
                      heading_from_motion=dict(min_speed=1.0)),
    ),
)

# Schedule sized for the 20-minute demo budget on 2 CPU cores (800 iterations: 200 training frames, batch 2,
# GT-database sampling in the train pipeline). Forward under bfloat16 autocast (fp32 weights, optimizer and losses): the
# dense BEV convolutions run ~1.7x faster on a CPU with AVX512-BF16, which buys the extra epochs.
max_epochs = 8
optim_wrapper = dict(type="AutocastOptimWrapper", dtype="bfloat16", optimizer=dict(lr=3e-3),
                     clip_grad=dict(max_norm=35, norm_type=2))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
