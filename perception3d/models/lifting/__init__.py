"""Camera-to-BEV lifting: per-pixel depth distributions and BEVFormer-style spatial cross-attention with DFA3D."""
from .bev_encoder import BEVLiftingEncoder, bev_anchors  # noqa: F401
from .depth_head import DepthHead, depth_to_bin, lidar_depth_distribution, num_depth_bins  # noqa: F401
from .spatial_cross_attn import (CameraRebatch, SpatialCrossAttention, flatten_camera_levels,  # noqa: F401
                                 project_anchors, rebatch_indices)
from .perspective_head import PerspectiveCenterHead, perspective_center_targets  # noqa: F401
