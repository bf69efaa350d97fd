# Self-supervised pretraining of LRGT's image encoder (the same MultiViewViT as lrgt_synthetic.py) on the synthetic
# renderings: per view, the object's silhouette (the rendering's alpha channel) from the composited image, through
# a small pixel-shuffle head on the 12 x 12 token map; BCE + soft Dice. It stands in for the DeiT / ImageNet
# initialisation of the paper, which cannot be downloaded here. LRGT loads the encoder with
#   --cfg-options model.image_init.checkpoint=work_dirs/lrgt_img_pretrain_synthetic/epoch_12.pth
# (configs/lrgt/README.md). No validation (no 3D output).
_base_ = ["./lrgt_synthetic.py"]

img_size = {{_base_.img_size}}
model = dict(
    _delete_=True,
    type="ReconImagePretrainer",
    data_preprocessor={{_base_.model.data_preprocessor}},
    encoder={{_base_.model.encoder}},
    head=dict(type="SilhouetteHead", in_channels={{_base_.dim}}, stride=8, mid_channels=64),
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

# 0.31 s an iteration on 2 CPU cores (69 an epoch): 12 epochs in ~4.5 minutes.
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
