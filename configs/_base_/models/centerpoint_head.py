# The CenterPoint head on the nuScenes classes with its train / test block, as CenterPoint trains and decodes on
# nuScenes: six class groups, velocity regressed with a 0.2 code weight, rotated-box NMS per group. Every model base
# takes it from here; the geometry (point_cloud_range, voxel_size) comes from the detector, out_size_factor and
# in_channels from the model base.
tasks = [
    dict(num_class=1, class_names=["car"]),
    dict(num_class=2, class_names=["truck", "construction_vehicle"]),
    dict(num_class=2, class_names=["bus", "trailer"]),
    dict(num_class=1, class_names=["barrier"]),
    dict(num_class=2, class_names=["motorcycle", "bicycle"]),
    dict(num_class=2, class_names=["pedestrian", "traffic_cone"]),
]
common_heads = dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2))

model = dict(
    head=dict(
        type="CenterHead", tasks=tasks, common_heads=common_heads, share_conv_channel=64, head_conv=64,
        train_cfg=dict(max_objs=500, gaussian_overlap=0.1, min_radius=2,
                       code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2]),
        test_cfg=dict(post_center_limit_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], score_threshold=0.1,
                      pre_topk=500, nms_type="rotate", nms_thr=0.2, pre_max_size=1000, post_max_size=83,
                      max_per_img=500),
    ),
)
