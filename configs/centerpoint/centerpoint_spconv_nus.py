# CenterPoint (voxel 0.1 m) on nuScenes: the spconv voxel base as it is (six CenterPoint class groups), keyframe +
# 9 sweeps, 20 epochs one-cycle.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/nuscenes.py",
    "../_base_/schedules/cyclic_20e.py",
    "../_base_/models/voxel_spconv_centerhead.py",
]
