# DSVT pillar detector on the synthetic world: the FlatFormer demo with the sparse backbone swapped (DSVT-P style).
# Same voxel encoder (0.4 m pillars, 256 x 256), BEV scatter, SECOND + FPN, CenterHead and schedule.
# Two blocks = four set-attention layers (X sets, Y sets per block), as FlatFormer's one block of four layers;
# block 0: 12 x 12 windows, block 1: 24 x 24 hybrid windows shifted by (6, 6); sets of 16 pillars (a synthetic
# keyframe has ~2.2k pillars, ~23 per non-empty 12 x 12 window: tau = 16 gives 1.4x slots per pillar there,
# DSVT's tau = 36 would give 2.1x, i.e. mostly duplicated slots).
# Pillars have nz = 1: no attention-style 3D pooling here (see dsvt_voxel_demo_synthetic.py for it).
_base_ = ["../flatformer/flatformer_demo_synthetic.py"]

embed_dim = 64
model = dict(
    sparse_backbone=dict(_delete_=True, type="DSVT", in_channels=embed_dim, embed_dim=embed_dim, num_heads=4,
                         num_blocks=2, set_size=16, window_shape=[12, 12], hybrid_factor=[2, 2, 1],
                         shift=[6, 6, 0]),
)
