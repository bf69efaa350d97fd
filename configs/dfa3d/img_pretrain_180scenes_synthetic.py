# img_pretrain_synthetic.py on 180 scenes (the demo world's 20 train scenes + the camera world's 160, `make
# camera-data`): 2 epochs = 1,800 iterations at batch 2 (the 20-scene pretraining: 20 x 100). The 180-scene
# detectors load its last checkpoint, work_dirs/img_pretrain_180scenes_synthetic/epoch_2.pth.
_base_ = ["./img_pretrain_synthetic.py", "../_base_/datasets/camera_world.py"]

train_dataloader = dict(dataset=dict(_delete_=True, type="ConcatDataset", datasets=[
    {{_base_.train_dataloader.dataset}},
    dict(type="NuScenesDataset", data_root={{_base_.camera_world_root}}, ann_file={{_base_.camera_world_ann_file}},
         pipeline={{_base_.train_pipeline}}, metainfo=dict(classes={{_base_.class_names}}), test_mode=False)]))
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
