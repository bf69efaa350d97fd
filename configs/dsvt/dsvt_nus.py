# DSVT-P on nuScenes: the FlatFormer nuScenes setup (0.3 m pillars over [-54, 54] m, 360 x 360 BEV, SECOND + FPN,
# CenterHead, 20 epochs one-cycle) with the sparse backbone swapped for DSVT as in DSVT's nuScenes config:
# 4 blocks (8 set-attention layers), embed 128, 8 heads, sets of 36 pillars, 12 x 12 windows alternating with
# 24 x 24 hybrid windows shifted by (6, 6). Pillars (nz = 1): no 3D pooling.
_base_ = ["../flatformer/flatformer_nus.py"]

embed_dim = 128
model = dict(
    sparse_backbone=dict(_delete_=True, type="DSVT", in_channels=embed_dim, embed_dim=embed_dim, num_heads=8,
                         num_blocks=4, set_size=36, window_shape=[12, 12], hybrid_factor=[2, 2, 1],
                         shift=[6, 6, 0]),
)
