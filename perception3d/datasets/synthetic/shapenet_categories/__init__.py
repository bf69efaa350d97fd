"""Procedural objects for the 13 ShapeNet categories of the 3D-R2N2 / Pix2Vox split, as primitive solids.

Each builder takes a ``numpy.random.Generator`` and returns a :class:`~.shapenet_shapes.Solid` in its own units
(the writer normalises it). Frame (ShapeNet's): **+y up, front towards -z** (a chair faces -z, a car drives
towards -z, an aeroplane's nose points to -z), x to the object's left. Furniture stands on y = 0.

Every builder draws its proportions and its part structure per instance (chairs with or without armrests and
with four legs, a swivel base or sled runners; round, oval or rectangular tables on legs, a pedestal or
trestles; floor / table / desk / globe lamps with drum, cone or sphere shades; aeroplanes with different wing
sweep, taper, position and engine counts; ...), so a category is a family of shapes. Parts are at least about
0.012 of the object's largest dimension thick, so the voxeliser's 3 x 3 x 3 samples per voxel find them.
Materials: each builder returns a palette (M, 3) of per-instance colours, indexed by the primitives.

Modules: :mod:`.furniture` (chair, table, sofa, bench, cabinet), :mod:`.vehicles` (car, aeroplane,
watercraft), :mod:`.objects` (rifle, display, speaker, telephone, lamp), :mod:`._parts` (palettes,
random draws, legs). This module is the registry: :data:`CATEGORIES`, :data:`BUILDERS`, :func:`build_object`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..shapenet_shapes import Solid
from ._parts import DARK, FABRIC, METAL, PAINT, PLASTIC, SHADE, WOOD  # noqa: F401  (palettes, re-exported)
from .furniture import bench, cabinet, chair, sofa, table
from .objects import display, lamp, rifle, speaker, telephone
from .vehicles import aeroplane, car, watercraft

# (synset, Pix2Vox taxonomy_name) in the split file's order
CATEGORIES = (("02691156", "aeroplane"), ("02828884", "bench"), ("02933112", "cabinet"), ("02958343", "car"),
              ("03001627", "chair"), ("03211117", "display"), ("03636649", "lamp"), ("03691459", "speaker"),
              ("04090263", "rifle"), ("04256520", "sofa"), ("04379243", "table"), ("04401088", "telephone"),
              ("04530566", "watercraft"))

BUILDERS: dict[str, Callable[[np.random.Generator], Solid]] = {
    "02691156": aeroplane, "02828884": bench, "02933112": cabinet, "02958343": car, "03001627": chair,
    "03211117": display, "03636649": lamp, "03691459": speaker, "04090263": rifle, "04256520": sofa,
    "04379243": table, "04401088": telephone, "04530566": watercraft}


def build_object(synset: str, rng: np.random.Generator) -> Solid:
    """A random instance of category ``synset`` (one of :data:`CATEGORIES`), in the builder's own units."""
    if synset not in BUILDERS:
        raise ValueError(f"unknown ShapeNet synset {synset!r}; expected one of {sorted(BUILDERS)}")
    return BUILDERS[synset](rng)
