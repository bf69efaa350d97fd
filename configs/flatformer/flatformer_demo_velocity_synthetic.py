# The lidar demo (flatformer_demo_synthetic.py) with the CenterPoint head's end-sampling velocity branch: each cell's
# velocity regressed from the shared BEV features at both ends of its predicted box, 0.5 m and 2.5 m beyond them
# (where a long vehicle's sweep-history trail is), instead of the centre-cell conv branch.
_base_ = ["./flatformer_demo_synthetic.py"]

model = dict(head=dict(velocity_branch=dict(type="end_sampling", margin=[0.5, 2.5], max_length=20.0)))
