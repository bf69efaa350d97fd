# dfa3d_gtdepth_demo_synthetic.py (DFA3D fed with lidar depth where a keyframe point projects) trained on 180 scenes
# as dfa3d_180scenes_synthetic.py (same data, budget and pretrained image branch).
_base_ = ["./dfa3d_180scenes_synthetic.py"]

model = dict(depth_source="lidar_gt")
val_dataloader = dict(dataset=dict(pipeline={{_base_.lidar_depth_test_pipeline}}))
test_dataloader = val_dataloader
