# flatformer_demo_sweeps9_synthetic.py (keyframe + 9 sweeps, 0.9 s of history; needs its own GT database, see there)
# with the head's end-sampling velocity branch of flatformer_demo_velocity_synthetic.py.
_base_ = ["./flatformer_demo_sweeps9_synthetic.py"]

model = dict(head=dict(velocity_branch=dict(type="end_sampling", margin=[0.5, 2.5], max_length=20.0)))
