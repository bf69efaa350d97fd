# ScatterFormer on nuScenes: the FlatFormer nuScenes setup (0.3 m pillars over [-54, 54] m, 360 x 360 BEV,
# SECOND + FPN, CenterHead, 20 epochs one-cycle) with the sparse backbone swapped for ScatterFormer:
# 4 blocks alternating unshifted / shifted 12 x 12 windows, embed 128, 8 heads (head dim 16), CWI 13-tap convs.
_base_ = ["../flatformer/flatformer_nus.py"]

embed_dim = 128
model = dict(
    sparse_backbone=dict(_delete_=True, type="ScatterFormer", in_channels=embed_dim, embed_dim=embed_dim,
                         num_heads=8, num_blocks=4, window_shape=[12, 12]),
)
