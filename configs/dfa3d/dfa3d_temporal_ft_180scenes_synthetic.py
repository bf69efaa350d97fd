# dfa3d_temporal_180scenes_synthetic.py (temporal self-attention + BEVDet4D concat) started from the single-frame
# dfa3d_180scenes_synthetic.py after its 4 epochs (temporal.init_from: every single-frame weight loaded, the
# temporal ones starting close to the identity) and trained 1 more epoch (900 iterations at batch 2) on queues of 2
# keyframes. Its single-frame control: dfa3d_180scenes_synthetic.py with load_from= the same checkpoint and
# train_cfg.max_epochs=1 (configs/dfa3d/README.md).
_base_ = ["./dfa3d_temporal_180scenes_synthetic.py"]

model = dict(temporal=dict(init_from="work_dirs/dfa3d_180scenes_synthetic/epoch_4.pth"))
max_epochs = 1
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
