from .flatformer import FlatFormer  # noqa: F401
