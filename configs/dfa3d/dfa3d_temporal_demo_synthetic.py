# dfa3d_demo_synthetic.py + temporal BEV (BEVFormer-style): every encoder layer starts with temporal self-attention
# over the previous keyframe's BEV aligned to the current ego pose; trained on queues of 2 keyframes (the previous
# one's BEV without gradients); at test time the model keeps the previous BEV of the scene (val frames in time
# order, batch 1) and resets at a scene change or a gap of more than 1 s.
_base_ = ["./dfa3d_demo_synthetic.py"]

queue_length = 2
model = dict(temporal=dict(queue_length=queue_length, max_time_gap=1.0, attn=dict(num_points=4)))
train_dataloader = dict(dataset=dict(queue_length=queue_length))
