# DSVT-V style 3D-voxel detector on the synthetic world: the FlatFormer demo's data, BEV backbone, neck, head and
# schedule, with 3D voxels (0.4 x 0.4 x 0.5 m -> grid (nz, ny, nx) = (16, 256, 256)) from a DynamicVFE.
# Stage 0: one block on 12 x 12 x 16 windows (hybrid 24 x 24 x 16, shift (6, 6, 0)), sets of 48 voxels;
# attention-style pooling along z by 4 (16 -> 4 levels); stage 1: one block on 12 x 12 x 4 windows;
# attention pooling of the remaining 4 levels into pillars (pool_to_bev), then the one-level BEV scatter.
_base_ = ["../flatformer/flatformer_demo_synthetic.py"]

embed_dim = 64
model = dict(
    voxel_size=[0.4, 0.4, 0.5],
    voxel_encoder=dict(_delete_=True, type="DynamicVFE", in_channels=5, feat_channels=[32, embed_dim], mode="max"),
    sparse_backbone=dict(_delete_=True, type="DSVT", in_channels=embed_dim, embed_dim=embed_dim, num_heads=4,
                         num_blocks=[1, 1], set_size=48, window_shape=[[12, 12, 16], [12, 12, 4]],
                         hybrid_factor=[2, 2, 1], shift=[6, 6, 0], z_pool=[4],
                         pool_to_bev=True),
)
