from . import optim_wrapper  # noqa: F401  (registers AutocastOptimWrapper)
from . import hooks  # noqa: F401  (registers Det3DVisualizationHook)
from . import checkpoint_hook  # noqa: F401  (registers AtomicCheckpointHook)
from . import precise_bn  # noqa: F401  (registers PreciseBNHook)
