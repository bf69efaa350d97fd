# dfa3d_demo_synthetic.py fed with lidar ground-truth depth: where a keyframe lidar point projects into a feature
# cell, DFA3D uses the one-hot distribution of its depth bin instead of the predicted one (predicted elsewhere).
# The depth head is still trained (it fills the cells without lidar). Needs the lidar depth map at test time too.
_base_ = ["./dfa3d_demo_synthetic.py"]

model = dict(depth_source="lidar_gt")
test_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=5, use_dim=[0, 1, 2, 3]),
    dict(type="LoadMultiViewImages"),
    dict(type="ResizeMultiViewImages", scale={{_base_.img_scale}}),
    dict(type="MultiViewDepthMap", stride=8, depth_range={{_base_.depth_range}}),
    dict(type="PackMultiViewInputs", keys=["img", "gt_depth"]),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
