# Synthetic ShapeNet in the 3D-R2N2 layout (tools/create_data.py synthetic-shapenet --out data/synthetic-shapenet):
# 13 categories, 24 views of 137 x 137 RGBA per model, ShapeNetVox32 voxels, the Pix2Vox-style split file.
# Preprocessing as Pix2Vox (background colour 225-255 random in training, 240 at test; crop 128; colour jitter in
# training), resized to img_size (Pix2Vox / LRGT: 224) for the CPU budget. Views: num_views random views of the
# 24 in training, the first num_views at test (Pix2Vox's protocol); test with 1 / 3 / 5 views through
#   --cfg-options test_dataloader.dataset.num_views=N
dataset_type = "ShapeNetDataset"
data_root = "data/synthetic-shapenet/"
img_size = 96
num_views = 3
fov_deg = 49.13434264120263  # the synthetic renderings' optics (camera.BLENDER_DEFAULT_FOV_DEG), as R2N2's Blender

train_pipeline = [
    dict(type="LoadReconViews"),
    dict(type="RandomBackground", color_range=(225, 255)),
    dict(type="CropResizeViews", crop_size=128, out_size=img_size, random_crop=True),
    dict(type="ColorJitterViews", brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type="LoadBinvox"),
    dict(type="PackReconInputs"),
]
test_pipeline = [
    dict(type="LoadReconViews"),
    dict(type="RandomBackground", color_range=(240, 240)),
    dict(type="CropResizeViews", crop_size=128, out_size=img_size),
    dict(type="LoadBinvox"),
    dict(type="PackReconInputs"),
]

train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, split_file="ShapeNet.json", split="train",
                 num_views=num_views, view_selection="random", fov_deg=fov_deg, pipeline=train_pipeline,
                 test_mode=False),
)
val_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, split_file="ShapeNet.json", split="val",
                 num_views=num_views, view_selection="first", fov_deg=fov_deg, pipeline=test_pipeline,
                 test_mode=True),
)
test_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, split_file="ShapeNet.json", split="test",
                 num_views=num_views, view_selection="first", fov_deg=fov_deg, pipeline=test_pipeline,
                 test_mode=True),
)
# voxel IoU at 0.2 / 0.3 / 0.4 / 0.5 and F-score@1% (max over thresholds, per category and overall)
val_evaluator = dict(type="ReconstructionMetric")
test_evaluator = val_evaluator
