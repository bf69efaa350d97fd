# The Gaussian reconstruction head on LRGT's encoder + merger (the same sizes as lrgt_synthetic.py): each of the 64
# merged tokens (one transformer block among them) predicts 8 Gaussians = 512 per object: means in the unit cube
# (0.5 tanh around a learned anchor), scales in [0.5, 1.5] voxels (sigmoid-bounded), quaternions, opacities;
# splatted to the 32^3 grid with ops/gaussian_splat ("sum" mode, truncation at 2.5 sigma:
# occupancy = 1 - exp(-sum_i o_i alpha_i)); soft Dice loss on the grid.
_base_ = ["../lrgt/lrgt_synthetic.py"]

dim = {{_base_.dim}}
model = dict(
    decoder=dict(_delete_=True, type="GaussianSplatDecoder", in_dim=dim, num_tokens=64, dim=128, num_gaussians=512,
                 num_heads=4, depth=1, scale_range=[0.5 / 32, 1.5 / 32], k=2.5, mode="sum"),
)

# 0.52 s an iteration on 2 CPU cores (tools/train.py, 69 iterations an epoch): 10 epochs in ~6 minutes idle.
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
