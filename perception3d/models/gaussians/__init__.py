"""Gaussian scene carriers: the Gaussian encoder (learnable Gaussians refined by camera / lidar feature sampling,
sparse-conv self-encoding and a bounded refine step) and the splatting of its Gaussians onto BEV maps.

The spconv self-encoding (:mod:`.sparse_encoding`) is imported only when an encoder uses it."""
from .encoder import GaussianEncoder, GaussianEncoderLayer, GaussianRefine, GaussianState, halton  # noqa: F401
from .sampling import GaussianBEVSampler, GaussianImageSampler, axis_offsets, gaussian_keypoints  # noqa: F401
from .splat import GaussianBEVSplat  # noqa: F401
