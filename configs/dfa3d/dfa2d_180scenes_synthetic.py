# dfa2d_demo_synthetic.py (2D deformable attention, no depth head) trained on 180 scenes as
# dfa3d_180scenes_synthetic.py (same data, budget and pretrained image branch).
_base_ = ["./dfa3d_180scenes_synthetic.py"]

model = dict(depth_head=None, bev_encoder=dict(attn_type="dfa2d"))
