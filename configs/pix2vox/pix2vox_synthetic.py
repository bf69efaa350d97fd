# Pix2Vox++-style baseline on the synthetic ShapeNet, sized for 2 CPU cores: per view a small ResNet (BasicBlocks,
# widths 32-64-128, stride 16, from scratch; Pix2Vox++: ImageNet ResNet-50 to layer 3) + the conv-BN-ELU neck,
# pooled to 4 x 4 x 128 = a 256 x 2^3 volume; the 3D decoder 2 -> 32 (128-64-32-8 channels) giving a coarse volume
# and 9-channel context per view; context-aware fusion (softmax of per-view score volumes across views); the
# 3D U-Net refiner (16-32-64 channels, 512-wide FC bottleneck); BCE x 10 on the fused and the refined volume.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/shapenet_synthetic.py",
    "../_base_/schedules/adamw_cosine.py",
]

model = dict(
    type="Pix2Vox",
    data_preprocessor=dict(type="ReconDataPreprocessor"),  # ImageNet mean / std on [0, 1] RGB
    encoder=dict(type="Pix2VoxEncoder",
                 backbone=dict(type="ResNet", widths=[32, 64, 128, 256], depths=[1, 1, 1, 1], out_indices=[2]),
                 in_channels=128, mid_channels=128, out_channels=128),
    decoder=dict(type="Pix2VoxDecoder", in_channels=128, channels=[128, 64, 32, 8]),
    fusion=dict(type="ContextAwareFusion", in_channels=9, widths=[8, 8, 4, 2]),  # Pix2Vox++: 16-8-4-2
    refiner=dict(type="Pix2VoxRefiner", channels=[16, 32, 64], fc_channels=512),
    loss_bce=10.0,
    loss_dice=0.0,
    # from scratch; the encoder of the silhouette pretraining (pix2vox_img_pretrain_synthetic.py, README.md) with
    # --cfg-options model.image_init.checkpoint=work_dirs/pix2vox_img_pretrain_synthetic/epoch_30.pth
    image_init=dict(checkpoint=None),
)

# 546 training objects, batch 8: 69 iterations an epoch. Measured through tools/train.py on 2 CPU cores (lightly
# shared): 1.22 s an iteration (1.9 s with OMP_NUM_THREADS=1; the per-view 32^3 decoder and fusion dominate) ->
# 7 epochs = 483 iterations in ~10 minutes.
optim_wrapper = dict(optimizer=dict(lr=2e-3))
max_epochs = 7
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
