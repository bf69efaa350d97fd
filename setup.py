"""Package layout: the top-level ``ops/`` folder is installed as ``perception3d.ops``."""
from setuptools import find_packages, setup

packages = ["perception3d"] + [f"perception3d.{p}" for p in find_packages("perception3d")]
packages += ["perception3d.ops"] + [f"perception3d.ops.{p}" for p in find_packages("ops")]
setup(packages=packages, package_dir={"perception3d": "perception3d", "perception3d.ops": "ops"},
      package_data={"perception3d.datasets.waymo.protos": ["*.proto"]})
