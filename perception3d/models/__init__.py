"""Models: voxel encoders, sparse 3D backbones, BEV/2D backbones, necks, heads, detectors."""
from . import data_preprocessors, detectors  # noqa: F401
from . import backbones, middle_encoders, voxel_encoders  # noqa: F401
from . import heads, necks  # noqa: F401
from . import lifting  # noqa: F401,E402
from . import reconstructors  # noqa: F401,E402
from . import gaussians  # noqa: F401,E402
