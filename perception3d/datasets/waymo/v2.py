"""Waymo Open Dataset v2 (Apache Parquet, one table per component) read into and written from
:class:`~.frame.WaymoFrame`, with pyarrow only (imported inside the functions, never by ``import perception3d``).

Layout: ``<root>/<split>/<component_tag>/<context_name>.parquet``, one file per component and segment. The
components used here are the keys of :data:`~.v2_schema.COMPONENTS`; each lists the columns the reader reads, with
the released names (key columns ``key.<name>``, data columns ``[<ComponentClass>].<dotted.path>``). The writer
produces exactly the released column names and arrow types (:func:`~.v2_schema.component_schema`).

Modules: :mod:`.v2_schema` (the released column schemas, component paths), :mod:`.v2_reader` (reading
rules and memory use: :func:`read_segment`, :func:`list_segments`, :func:`segment_timestamps`) and
:mod:`.v2_writer` (:func:`write_segment`); this module re-exports their public names.
"""
from __future__ import annotations

from .v2_reader import list_segments, read_segment, segment_timestamps
from .v2_schema import (
    CAMERA,
    COMPONENTS,
    LASER,
    OBJECT_ID,
    OPTIONAL_COMPONENTS,
    SEG,
    TS,
    component_path,
    component_schema,
)
from .v2_writer import write_segment

__all__ = ["CAMERA", "COMPONENTS", "LASER", "OBJECT_ID", "OPTIONAL_COMPONENTS", "SEG", "TS", "component_path",
           "component_schema", "list_segments", "read_segment", "segment_timestamps", "write_segment"]
