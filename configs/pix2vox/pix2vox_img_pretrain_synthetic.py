# Self-supervised pretraining of the Pix2Vox encoder (ResNet + neck, as pix2vox_synthetic.py) on the synthetic
# renderings: per view, the object's silhouette (the rendering's alpha channel) from the composited image, through
# a pixel-shuffle head on the stride-16 neck map; BCE + soft Dice. It stands in for Pix2Vox++'s ImageNet
# ResNet-50, which cannot be downloaded here. Pix2Vox loads the encoder with
#   --cfg-options model.image_init.checkpoint=work_dirs/pix2vox_img_pretrain_synthetic/epoch_30.pth
# (configs/pix2vox/README.md). No validation (no 3D output).
_base_ = ["./pix2vox_synthetic.py"]

img_size = {{_base_.img_size}}
model = dict(
    _delete_=True,
    type="ReconImagePretrainer",
    data_preprocessor={{_base_.model.data_preprocessor}},
    encoder={{_base_.model.encoder}},
    head=dict(type="SilhouetteHead", in_channels=128, stride=16, mid_channels=64),
)

train_pipeline = [
    dict(type="LoadReconViews"),
    dict(type="CropResizeViews", crop_size=128, out_size=img_size, random_crop=True),
    dict(type="ViewSilhouettes"),  # alpha after the crop, before the background drops it
    dict(type="RandomBackground", color_range=(225, 255)),
    dict(type="ColorJitterViews", brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type="PackReconSilhouettes"),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

# 0.09 s an iteration on 2 CPU cores (69 an epoch): 30 epochs in ~3 minutes.
max_epochs = 30
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
