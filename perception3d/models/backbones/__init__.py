from .flatformer import FlatFormer  # noqa: F401
from .second import SECOND  # noqa: F401
from .scatterformer import ScatterFormer  # noqa: F401
from .dsvt import DSVT  # noqa: F401
from .padded_window import PaddedWindowAttention  # noqa: F401
from .resnet import ResNet  # noqa: F401
