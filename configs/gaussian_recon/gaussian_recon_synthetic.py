# The Gaussian reconstruction head on LRGT's encoder + merger (the same sizes as lrgt_synthetic.py): 512 Gaussians
# per object from 512 learned queries attending to the 64 merged tokens (2 blocks), means in the unit cube
# (0.5 tanh), scales in [0.5, 1.5] voxels (sigmoid-bounded), quaternions, opacities; splatted to the 32^3 grid
# with ops/gaussian_splat ("sum" mode, truncation at 2.5 sigma: occupancy = 1 - exp(-sum_i o_i alpha_i)); soft
# Dice loss on the grid.
_base_ = ["../lrgt/lrgt_synthetic.py"]

dim = {{_base_.dim}}
model = dict(
    decoder=dict(_delete_=True, type="GaussianSplatDecoder", in_dim=dim, dim=128, num_gaussians=512, num_heads=4,
                 depth=2, scale_range=[0.5 / 32, 1.5 / 32], k=2.5, mode="sum"),
)

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
