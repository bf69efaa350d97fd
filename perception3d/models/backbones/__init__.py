from .flatformer import FlatFormer  # noqa: F401
from .second import SECOND  # noqa: F401
from .scatterformer import ScatterFormer  # noqa: F401
