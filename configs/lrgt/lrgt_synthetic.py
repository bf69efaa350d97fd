# LRGT (Long-Range Grouping Transformer) on the synthetic ShapeNet, sized for 2 CPU cores: 96 px views, a 12 x 12
# grid of 8 px patch tokens per view, ViT of dim 128 x 6 blocks alternating per-view attention and long-range
# grouping attention (group factor 6: each group = 2 x 2 tokens spread 6 patches apart, in every view) with the
# inter-view signature, an attention-pooling merger to 64 tokens, and the progressive decoder (4^3 learned queries
# x 2 blocks, 1 block at 8^3, transposed 3D convolutions to 32^3), soft Dice loss. The paper: 224 px, patch 16,
# DeiT-B (768 x 12) from ImageNet; here everything is trained from scratch (README.md: what replaces DeiT).
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/shapenet_synthetic.py",
    "../_base_/schedules/adamw_cosine.py",
]

img_size = {{_base_.img_size}}
dim = 128
heads = 4
model = dict(
    type="LRGT",
    data_preprocessor=dict(type="ReconDataPreprocessor"),  # ImageNet mean / std on [0, 1] RGB
    encoder=dict(type="MultiViewViT", img_size=img_size, patch_size=8, dim=dim, depth=6, num_heads=heads,
                 block_types=["view", "lga", "view", "lga", "view", "lga"], group=6,
                 # a 3-layer stride-2 conv stem instead of the linear patch embedding: a ViT trained from scratch on
                 # ~500 objects; stem="patch" is the paper's (linear) embedding
                 stem="conv",
                 # CaiT's LayerScale (0.1): without it, the blocks of this from-scratch ViT wash the image content out
                 # of the tokens and the model falls to the mean shape (README.md: the measurements)
                 layer_scale=0.1),
    merger=dict(type="AttentionTokenMerger", dim=dim, num_tokens=64, num_heads=heads),
    # the 64 merged tokens seed the 4^3 queries (tokens_as_queries), so object content reaches every cell directly
    decoder=dict(type="ProgressiveVoxelDecoder", in_dim=dim, num_heads=heads, depths=[2, 1, 0, 0],
                 channels=[64, 32, 16], tokens_as_queries=True),
    loss_dice=1.0,
    loss_bce=0.0,
    # from scratch; the encoder of the silhouette pretraining (lrgt_img_pretrain_synthetic.py, README.md) with
    # --cfg-options model.image_init.checkpoint=work_dirs/lrgt_img_pretrain_synthetic/epoch_12.pth
    image_init=dict(checkpoint=None),
)

# 546 training objects, batch 8: 69 iterations an epoch. Measured through tools/train.py on 2 CPU cores (lightly
# shared): 0.47 s an iteration (0.82 s with OMP_NUM_THREADS=1) -> 10 epochs = 690 iterations in ~6 minutes idle.
# AdamW 1e-3: at 3e-3 the model falls to the mean shape within 300 iterations, with or without LayerScale (README.md).
# no weight decay on norms, biases, LayerScale, position embeddings and learned queries / anchors (ViT practice)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05),
                     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                                        custom_keys={k: dict(decay_mult=0.0) for k in ("pos", "queries", "slot_embed",
                                                                                       "anchors", "gamma")}))
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
