"""mmengine child registries for perception3d (scope ``perception3d``).

Every buildable component registers itself here. Configs set ``default_scope = 'perception3d'``
so that ``type='FlatFormer'`` resolves to our classes; mmengine's own components (optimizers,
hooks, loops) are still found through the parent registries.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

SCOPE = "perception3d"


def _child(name: str, parent: Registry, module: str) -> Registry:
    return Registry(name, parent=parent, scope=SCOPE, locations=[f"perception3d.{module}"])


MODELS = _child("model", MMENGINE_MODELS, "models")
DATASETS = _child("dataset", MMENGINE_DATASETS, "datasets")
DATA_SAMPLERS = _child("data sampler", MMENGINE_DATA_SAMPLERS, "datasets")
TRANSFORMS = _child("transform", MMENGINE_TRANSFORMS, "datasets.transforms")
METRICS = _child("metric", MMENGINE_METRICS, "evaluation")
EVALUATOR = _child("evaluator", MMENGINE_EVALUATOR, "evaluation")
VISUALIZERS = _child("visualizer", MMENGINE_VISUALIZERS, "visualization")
VISBACKENDS = _child("vis_backend", MMENGINE_VISBACKENDS, "visualization")
HOOKS = _child("hook", MMENGINE_HOOKS, "engine")
LOOPS = _child("loop", MMENGINE_LOOPS, "engine")
TASK_UTILS = _child("task util", MMENGINE_TASK_UTILS, "models")
OPTIM_WRAPPERS = _child("optim wrapper", MMENGINE_OPTIM_WRAPPERS, "engine")
PARAM_SCHEDULERS = _child("parameter scheduler", MMENGINE_PARAM_SCHEDULERS, "engine")

from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS  # noqa: E402
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS  # noqa: E402

OPTIMIZERS = _child("optimizer", MMENGINE_OPTIMIZERS, "engine")
OPTIM_WRAPPER_CONSTRUCTORS = _child("optimizer wrapper constructor", MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, "engine")
