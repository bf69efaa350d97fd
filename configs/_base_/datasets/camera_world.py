# More training scenes for the camera detectors: a second synthetic world written by `make camera-data` (seed 1,
# 160 train scenes of 10 keyframes, no val split, no lidar sweeps: the camera configs read the keyframe lidar only
# for depth targets). Its train split is added to the demo world's 20 scenes; validation stays on the demo world's
# val split, so the numbers compare with the 20-scene configs.
camera_world_root = "data/camera-world/"
camera_world_ann_file = "nuscenes_infos_synthetic_train.pkl"
