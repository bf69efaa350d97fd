from .det3d import Det3DDataPreprocessor  # noqa: F401
from .recon import ReconDataPreprocessor  # noqa: F401
