# CenterPoint-style voxel detector on spconv, the baseline to compare FlatFormer with: the FlatFormer demo (data,
# one-group head, schedule) with 3D voxels and the spconv SECOND sparse encoder instead of pillars + FlatFormer.
# 3D voxels 0.2 x 0.2 x 0.25 m: grid (nz, ny, nx) = (32, 512, 512) plus SECOND's extra z cell (z_pad=1). The
# encoder strides x / y by 8 and compresses z 33 -> 17 -> 9 -> 4 -> 1, so its BEV map is (B, 128, 64, 64) at 1.6 m;
# SECOND (strides 1, 2) + FPN (upsample 2, 4) bring it to 128 x 128 = out_size_factor 4 (0.8 m cells, the FlatFormer
# demo's heatmap). Also different: float32 training, as spconv has no bfloat16 kernels on a CPU.
_base_ = ["../flatformer/flatformer_demo_synthetic.py"]

model = dict(
    voxel_size=[0.2, 0.2, 0.25],
    voxel_encoder=dict(_delete_=True, type="DynamicVFE", in_channels=5, feat_channels=[32, 32], mode="mean"),
    sparse_backbone=dict(_delete_=True, type="SparseEncoder", in_channels=32, z_pad=1, base_channels=16,
                         output_channels=128, encoder_channels=[[16], [32, 32, 32], [64, 64, 64], [64, 64, 64]],
                         encoder_paddings=[[1], [1, 1, 1], [1, 1, 1], [[0, 1, 1], 1, 1]]),
    bev_scatter=dict(in_channels=128),
    backbone=dict(in_channels=128, layer_strides=[1, 2]),
    neck=dict(upsample_strides=[2, 4]),
    head=dict(bbox_coder=dict(out_size_factor=4)),
)

optim_wrapper = dict(_delete_=True, type="OptimWrapper", optimizer={{_base_.optim_wrapper.optimizer}},
                     clip_grad={{_base_.optim_wrapper.clip_grad}})
