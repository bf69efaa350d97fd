# ScatterFormer pillar detector on the synthetic world: the FlatFormer demo with the sparse backbone swapped.
# Same voxel encoder (0.4 m pillars, 256 x 256), BEV scatter, SECOND + FPN, CenterHead and schedule.
# Four blocks (alternately unshifted / half-window-shifted 12 x 12 windows), each SLA + CWI (13-tap convs) + FFN:
# two blocks trailed FlatFormer clearly (README.md); four cost about the same per iteration as the FlatFormer demo
# (its backbone is a small part of the step).
_base_ = ["../flatformer/flatformer_demo_synthetic.py"]

embed_dim = 64
model = dict(
    sparse_backbone=dict(_delete_=True, type="ScatterFormer", in_channels=embed_dim, embed_dim=embed_dim,
                         num_heads=4, num_blocks=4, window_shape=[12, 12]),
)
