# dfa3d_temporal_demo_synthetic.py (temporal self-attention) + BEVDet4D's concatenation of the aligned previous BEV
# before the BEV backbone, trained on 180 scenes as dfa3d_180scenes_synthetic.py (same budget: 3,600 iterations at
# batch 2, queues of 2 keyframes).
_base_ = ["./dfa3d_temporal_demo_synthetic.py", "../_base_/datasets/camera_world.py"]

model = dict(temporal=dict(concat=True), backbone=dict(in_channels=128),  # [current, previous] BEV: 2 x embed_dim
             image_init=dict(checkpoint="work_dirs/img_pretrain_180scenes_synthetic/epoch_2.pth"))
train_dataloader = dict(dataset=dict(_delete_=True, type="ConcatDataset", datasets=[
    {{_base_.train_dataloader.dataset}},
    dict(type="NuScenesDataset", data_root={{_base_.camera_world_root}}, ann_file={{_base_.camera_world_ann_file}},
         pipeline={{_base_.train_pipeline}}, metainfo=dict(classes={{_base_.class_names}}), test_mode=False,
         queue_length={{_base_.queue_length}})]))
max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
