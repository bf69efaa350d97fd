# Pretraining of the camera detectors' image branch (ResNet + FPN + depth head + perspective centre head) on the
# synthetic world's training cameras: lidar depth bins and projected 3D box centres, per image, no BEV lifting.
# It stands in for the ImageNet / FCOS3D-pretrained backbones of BEVFormer and the DFA3D paper, which cannot be
# downloaded here. The detectors load it with `image_init` (dfa3d_demo_synthetic.py and variants).
# Validation: depth errors (AbsRel, RMSE, delta < 1.25) of the expected depth against the val split's lidar.
# Based on the lidar-depth variant for its test pipeline, which already loads the lidar depth maps the depth metric
# scores against; only the image branch of its model is kept.
_base_ = ["./dfa3d_gtdepth_demo_synthetic.py"]

model = dict(
    _delete_=True,
    type="CameraImagePretrainer",
    data_preprocessor={{_base_.model.data_preprocessor}},
    img_backbone={{_base_.model.img_backbone}},
    img_neck={{_base_.model.img_neck}},
    depth_head={{_base_.model.depth_head}},
    perspective_head={{_base_.model.perspective_head}},
)

val_evaluator = dict(_delete_=True, type="DepthMetric", min_depth=2.0, max_depth=58.0)  # the depth bins' range
test_evaluator = val_evaluator

# 20 x 100 iterations; an image-branch step costs about a quarter of a detector step. The detectors' image_init
# points at this run's last checkpoint, work_dirs/img_pretrain_synthetic/epoch_20.pth.
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
