"""Necks: fuse multi-stride BEV maps."""
from .second_fpn import SECONDFPN  # noqa: F401
from .image_fpn import ImageFPN  # noqa: F401
from .bev_fuser import BEVConvFuser  # noqa: F401
