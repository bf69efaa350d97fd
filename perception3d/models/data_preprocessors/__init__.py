from .det3d import Det3DDataPreprocessor  # noqa: F401
