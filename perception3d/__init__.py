"""perception3d: 3D perception from lidar point clouds and multi-camera images.

Importing the package is cheap: heavy optional dependencies (open3d, triton, nuscenes-devkit,
spconv) are imported lazily by the modules that need them. Registries live in
:mod:`perception3d.registry`; call :func:`register_all_modules` before building from configs.
"""
__version__ = "0.1.0"


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module that registers components and set mmengine's default scope."""
    import importlib

    for mod in ("datasets", "datasets.transforms", "models", "evaluation", "engine", "visualization"):
        importlib.import_module(f"perception3d.{mod}")
    if init_default_scope:
        from mmengine.registry import DefaultScope

        if DefaultScope.get_current_instance() is None or not DefaultScope.check_instance_created("perception3d"):
            DefaultScope.get_instance("perception3d", scope_name="perception3d")
