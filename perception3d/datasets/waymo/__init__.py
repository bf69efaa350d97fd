"""Waymo Open Dataset: v1 TFRecord and v2 parquet readers (no TensorFlow), range-image conversion and the
dataset adapter. Submodules import lazily; ``import perception3d`` never pulls protobuf or pyarrow."""
