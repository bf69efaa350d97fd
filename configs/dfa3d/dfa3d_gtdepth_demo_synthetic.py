# dfa3d_demo_synthetic.py fed with lidar ground-truth depth: where a keyframe lidar point projects into a feature
# cell, DFA3D uses the one-hot distribution of its depth bin instead of the predicted one (predicted elsewhere).
# The depth head is still trained (it fills the cells without lidar). Needs the lidar depth map at test time too.
_base_ = ["./dfa3d_demo_synthetic.py"]

model = dict(depth_source="lidar_gt")
val_dataloader = dict(dataset=dict(pipeline={{_base_.lidar_depth_test_pipeline}}))
test_dataloader = val_dataloader
