from .dynamic_vfe import DynamicPillarFeatureNet, DynamicVFE  # noqa: F401
