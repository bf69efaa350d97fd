# FlatFormer pillar detector with a CenterPoint head, sized for 2 CPU cores, on the synthetic world.
# This is what `make demo` trains and evaluates. The pillar FlatFormer base shrunk: 0.4 m pillars over the
# dataset's [-51.2, 51.2] m (256 x 256 BEV grid, heatmap 128 x 128 at 0.8 m), C = 64, one block.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes_synthetic.py",
    "../_base_/schedules/adamw_cosine.py",
    "../_base_/models/pillar_flatformer_centerhead.py",
]

embed_dim = 64
model = dict(
    channels_last=True,  # NHWC weights: the BEV convolutions run in oneDNN's preferred layout (faster on CPU)
    point_cloud_range={{_base_.point_cloud_range}},
    voxel_size=[0.4, 0.4, 8.0],
    # the sweep time lag (column 4, 0-0.4 s) scaled x10 before the PointNet, to the range of the metric columns
    voxel_encoder=dict(feat_channels=[32, embed_dim], point_scale=[1.0, 1.0, 1.0, 1.0, 10.0]),
    sparse_backbone=dict(in_channels=embed_dim, embed_dim=embed_dim, num_heads=4, num_blocks=1, window_shape=[8, 8],
                         group_size=64),
    bev_scatter=dict(in_channels=embed_dim),
    backbone=dict(in_channels=embed_dim, out_channels=[64, 128], layer_nums=[2, 4]),
    neck=dict(in_channels=[64, 128], out_channels=[64, 64]),
    head=dict(
        in_channels=128,
        # one class group (10 heatmap channels, shared regression) instead of CenterPoint's six: the six
        # groups' 36 extra 3x3 convs at 128 x 128 would triple the head cost on a CPU. With all classes in one
        # group, NMS is class-aware and keeps more boxes per group.
        tasks=[dict(num_class=10, class_names={{_base_.class_names}})],
        head_conv=32,
        # velocity at full weight, and also supervised at every cell inside a box (not only its centre cell): a
        # long vehicle's motion cue is its sweep trail at its ends, 5 m from the centre (docs: model zoo)
        train_cfg=dict(code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], dense_velocity_weight=0.25),
        test_cfg=dict(nms_class_aware=True, post_max_size=300,
                      # boxes predicted to move >= 1 m/s take the heading (of the regressed pi-pair) that points along
                      # their velocity: front and back of a truck look alike to a lidar; a walking pedestrian faces
                      # where it walks (its shape carries no heading)
                      heading_from_motion=dict(min_speed=1.0, align_classes=["pedestrian"])),
    ),
    # test time: each box's velocity re-measured on the sweeps (the speed whose motion-compensated points are
    # sharpest; docs: model zoo): vehicles along their heading, pedestrians and bicycles in any direction. Where the
    # head says a vehicle moves >= 2 m/s along its heading, the fit keeps the head's direction and measures the speed
    # (the head gets the direction right; a long vehicle's sharpest alignment can be the mirror one); where it says
    # >= 4 m/s, from half its speed up (static points in the window can make 0 m/s the sharpest)
    motion_fit=[
        dict(type="SweepMotionFit", classes=["car", "construction_vehicle", "motorcycle"],
             max_speed=20.0, coarse_step=0.5, speed_step=0.25, bin_size=0.1, prior_sign_speed=2.0,
             prior_floor_speed=4.0),
        # long vehicles: a small sideways speed too (a heading error tilts their motion in the box frame), and
        # every sweep weighs the same (a sweep that saw the vehicle closer holds many more points)
        dict(type="SweepMotionFit", classes=["truck", "bus", "trailer"], max_speed=15.0, lateral_speed=1.5,
             coarse_step=0.75, speed_step=0.25, bin_size=0.1, balance_sweeps=True, prior_sign_speed=2.0,
             prior_floor_speed=4.0),
        dict(type="SweepMotionFit", classes=["pedestrian", "bicycle"], max_speed=2.5, lateral_speed=2.5,
             coarse_step=0.5, speed_step=0.25, bin_size=0.1, lateral_margin=0.5, min_points=5),
    ],
)

# Schedule sized for the 20-minute demo budget on 2 CPU cores (800 iterations: 200 training frames, batch 2,
# GT-database sampling in the train pipeline). Forward under bfloat16 autocast (fp32 weights, optimizer and losses): the
# dense BEV convolutions run ~1.7x faster on a CPU with AVX512-BF16, which buys the extra epochs.
max_epochs = 8
optim_wrapper = dict(type="AutocastOptimWrapper", dtype="bfloat16", optimizer=dict(lr=3e-3),
                     clip_grad=dict(max_norm=35, norm_type=2))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
