# DFA2D baseline of dfa3d_demo_synthetic.py: the same BEVFormer-style spatial cross-attention with 2D deformable
# attention (samples (u, v) on the image feature, no depth) and, as the paper's BEVFormer baseline, no depth head
# (so no depth supervision). Everything else (data, budget, BEV grid, head) is identical.
_base_ = ["./dfa3d_demo_synthetic.py"]

model = dict(depth_head=None, bev_encoder=dict(attn_type="dfa2d"))
