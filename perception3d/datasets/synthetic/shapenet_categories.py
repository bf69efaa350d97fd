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
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .shapenet_shapes import Solid, SolidBuilder, frame_y, rot_x, rot_y, rot_z

# (synset, Pix2Vox taxonomy_name) in the split file's order
CATEGORIES = (("02691156", "aeroplane"), ("02828884", "bench"), ("02933112", "cabinet"), ("02958343", "car"),
              ("03001627", "chair"), ("03211117", "display"), ("03636649", "lamp"), ("03691459", "speaker"),
              ("04090263", "rifle"), ("04256520", "sofa"), ("04379243", "table"), ("04401088", "telephone"),
              ("04530566", "watercraft"))

WOOD = ((0.55, 0.36, 0.20), (0.70, 0.52, 0.32), (0.40, 0.25, 0.14), (0.80, 0.66, 0.46), (0.30, 0.18, 0.10))
METAL = ((0.62, 0.63, 0.66), (0.32, 0.33, 0.35), (0.80, 0.80, 0.82), (0.15, 0.15, 0.16))
FABRIC = ((0.60, 0.15, 0.12), (0.20, 0.30, 0.55), (0.25, 0.45, 0.30), (0.75, 0.70, 0.60), (0.35, 0.35, 0.38),
          (0.85, 0.55, 0.20), (0.50, 0.30, 0.50), (0.15, 0.15, 0.17))
PAINT = ((0.80, 0.10, 0.10), (0.10, 0.25, 0.65), (0.90, 0.90, 0.92), (0.12, 0.12, 0.13), (0.60, 0.62, 0.65),
         (0.90, 0.75, 0.10), (0.15, 0.45, 0.25), (0.55, 0.10, 0.20))
PLASTIC = ((0.10, 0.10, 0.11), (0.85, 0.85, 0.87), (0.45, 0.46, 0.50), (0.20, 0.22, 0.30))
DARK = ((0.05, 0.06, 0.08), (0.08, 0.10, 0.16), (0.12, 0.12, 0.12))
SHADE = ((0.95, 0.92, 0.80), (0.90, 0.85, 0.70), (0.85, 0.30, 0.20), (0.30, 0.50, 0.60), (0.95, 0.95, 0.95),
         (0.20, 0.20, 0.20))


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _choice(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _colour(rng: np.random.Generator, family, jitter: float = 0.12) -> np.ndarray:
    base = np.asarray(family[int(rng.integers(len(family)))], np.float64)
    return np.clip(base * rng.uniform(1 - jitter, 1 + jitter, 3) + rng.uniform(-0.03, 0.03, 3), 0.02, 1.0)


def _slab_legs(b: SolidBuilder, rng, corners, top_y: float, r: float, mat: int, round_legs: bool, splay: float,
               taper: float = 1.0) -> None:
    """Legs from ``(x, top_y, z)`` corners down to the floor, splayed outwards by ``splay``."""
    for x, z in corners:
        top = np.array([x, top_y, z])
        bottom = np.array([x + math.copysign(splay, x), 0.0, z + math.copysign(splay, z)])
        if round_legs:
            b.rod(bottom, top, r * taper, r, mat=mat)
        else:
            axis = top - bottom
            b.box((top + bottom) / 2, (r, np.linalg.norm(axis) / 2, r), mat=mat, rot=frame_y(axis) @ _yaw_fix(axis))


def _yaw_fix(axis) -> np.ndarray:
    """Rotation about local y that keeps a box leg's faces aligned with the x / z axes (frame_y picks any)."""
    f = frame_y(axis)
    ang = math.atan2(-f[2, 0], f[0, 0])  # angle of the local x axis in the x-z plane
    return rot_y(-ang)


# ------------------------------------------------------------------------------------------- furniture
def chair(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    frame, seat_c = _colour(rng, _choice(rng, (WOOD, METAL, PLASTIC))), _colour(rng, FABRIC)
    if rng.random() < 0.35:
        seat_c = frame * rng.uniform(0.85, 1.1)
    w, d, h = _u(rng, 0.42, 0.58), _u(rng, 0.40, 0.55), _u(rng, 0.40, 0.50)
    st = _u(rng, 0.035, 0.09)
    if rng.random() < 0.15:
        b.frustum((0, h - st / 2, 0), w / 2, st / 2, d / 2, mat=1)
    else:
        b.box((0, h - st / 2, 0), (w / 2, st / 2, d / 2), mat=1)
    under = h - st
    legs = _choice(rng, ("four", "swivel", "sled"), p=(0.65, 0.2, 0.15))
    if legs == "four":
        r, inset = _u(rng, 0.014, 0.03), _u(rng, 0.02, 0.06)
        splay = _u(rng, 0.0, 0.05) if rng.random() < 0.4 else 0.0
        xs, zs = w / 2 - inset, d / 2 - inset
        _slab_legs(b, rng, [(sx * xs, sz * zs) for sx in (-1, 1) for sz in (-1, 1)], under + 0.005, r, 0,
                   rng.random() < 0.5, splay, _u(rng, 0.6, 1.0))
        if rng.random() < 0.4:  # side stretchers
            y = _u(rng, 0.08, 0.2)
            for sx in (-1, 1):
                b.rod((sx * (xs + splay * (1 - y / under)), y, -zs), (sx * (xs + splay * (1 - y / under)), y, zs),
                      max(0.012, r * 0.6), mat=0)
    elif legs == "swivel":
        col, base_y = _u(rng, 0.022, 0.038), _u(rng, 0.06, 0.1)
        b.rod((0, base_y, 0), (0, under, 0), col, mat=0)
        b.box((0, under - 0.02, 0), (0.07, 0.02, 0.07), mat=0)
        n, reach, phase = int(rng.choice([4, 5, 5])), _u(rng, 0.24, 0.32), _u(rng, 0, 2 * math.pi)
        for i in range(n):
            a = phase + 2 * math.pi * i / n
            end = np.array([reach * math.cos(a), 0.035, reach * math.sin(a)])
            b.rod((0, base_y, 0), end, 0.018, mat=0)
            b.ellipsoid(end - (0, 0.01, 0), (0.025, 0.025, 0.025), mat=0)
    else:
        r = _u(rng, 0.012, 0.02)
        for sx in (-1, 1):
            x = sx * (w / 2 - 0.03)
            b.rod((x, r, -d / 2), (x, r, d / 2), r, mat=0)
            b.rod((x, r, -d / 2 + 0.05), (x, under + 0.005, -d / 2 + 0.08), r, mat=0)
            b.rod((x, r, d / 2 - 0.05), (x, under + 0.005, d / 2 - 0.08), r, mat=0)
    # back, leaning towards +z by `tilt`
    style = _choice(rng, ("panel", "slats", "frame", "rounded"), p=(0.4, 0.2, 0.2, 0.2))
    bh, tilt, bt = _u(rng, 0.32, 0.55), _u(rng, 0.0, 0.28), _u(rng, 0.025, 0.06)
    rb = rot_x(tilt)
    base = np.array([0.0, h - st * 0.5, d / 2 - bt / 2])

    def at(local):
        return base + rb @ np.asarray(local, np.float64)

    if style == "panel":
        b.box(at((0, bh / 2, 0)), (w / 2 * _u(rng, 0.85, 1.0), bh / 2, bt / 2), mat=1, rot=rb)
    elif style == "rounded":
        b.box(at((0, bh * 0.3, 0)), (w / 2 * 0.95, bh * 0.3, bt / 2), mat=1, rot=rb)
        b.ellipsoid(at((0, bh * 0.6, 0)), (w / 2 * 0.95, bh * 0.4, bt / 2), mat=1, rot=rb)
    else:
        pr = _u(rng, 0.014, 0.025)
        for sx in (-1, 1):
            b.box(at((sx * (w / 2 - pr), bh / 2, 0)), (pr, bh / 2, max(pr, bt / 2)), mat=0, rot=rb)
        b.box(at((0, bh - 0.03, 0)), (w / 2, 0.03, bt / 2), mat=1, rot=rb)
        if style == "slats":
            n = int(rng.integers(2, 6))
            for i in range(n):
                x = (i + 0.5) / n * (w - 4 * pr) - (w / 2 - 2 * pr)
                b.box(at((x, bh / 2, 0)), (min(0.03, (w - 4 * pr) / n / 3), bh / 2, 0.008), mat=1, rot=rb)
        else:
            for y in np.linspace(0.25, 0.6, int(rng.integers(1, 3))) * bh:
                b.box(at((0, y, 0)), (w / 2, 0.02, 0.008), mat=1, rot=rb)
    if rng.random() < 0.3:  # armrests
        ah, aw = _u(rng, 0.16, 0.25), _u(rng, 0.025, 0.05)
        for sx in (-1, 1):
            x = sx * (w / 2 + aw / 4)
            b.box((x, h + ah, 0.02), (aw / 2, 0.018, d / 2 * 0.85), mat=0)
            b.rod((x, h - st, -d / 2 + 0.06), (x, h + ah, -d / 2 + 0.06), 0.015, mat=0)
            b.rod((x, h - st, d / 2 - 0.08), (x, h + ah, d / 2 - 0.08), 0.015, mat=0)
    return b.build([frame, seat_c])


def table(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    top_c = _colour(rng, _choice(rng, (WOOD, WOOD, PLASTIC, METAL)))
    leg_c = top_c * rng.uniform(0.8, 1.0) if rng.random() < 0.6 else _colour(rng, METAL)
    shape = _choice(rng, ("rect", "round", "oval"), p=(0.6, 0.25, 0.15))
    h, t = _u(rng, 0.40, 0.78), _u(rng, 0.025, 0.07)
    if shape == "rect":
        lx = _u(rng, 0.8, 1.4)
        lz = lx * (_u(rng, 0.92, 1.0) if rng.random() < 0.2 else _u(rng, 0.45, 0.85))
        b.box((0, h - t / 2, 0), (lx / 2, t / 2, lz / 2), mat=0)
        base = _choice(rng, ("four", "trestle", "pedestal"), p=(0.7, 0.2, 0.1))
    else:
        lx = _u(rng, 0.7, 1.1)
        lz = lx if shape == "round" else lx * _u(rng, 0.55, 0.8)
        b.frustum((0, h - t / 2, 0), lx / 2, t / 2, lz / 2, mat=0)
        base = _choice(rng, ("four", "pedestal", "three"), p=(0.35, 0.45, 0.2))
    under = h - t
    if base in ("four", "three"):
        r = _u(rng, 0.018, 0.04)
        splay = _u(rng, 0.0, 0.06) if rng.random() < 0.3 else 0.0
        if shape == "rect":
            inset = _u(rng, 0.03, 0.1)
            corners = [(sx * (lx / 2 - inset - r), sz * (lz / 2 - inset - r)) for sx in (-1, 1) for sz in (-1, 1)]
        else:
            n = 4 if base == "four" else 3
            a0 = math.pi / 4 if n == 4 else math.pi / 2
            angles = [a0 + 2 * math.pi * i / n for i in range(n)]
            corners = [(0.75 * lx / 2 * math.cos(a), 0.75 * lz / 2 * math.sin(a)) for a in angles]
        _slab_legs(b, rng, corners, under + 0.005, r, 1, rng.random() < 0.5, splay, _u(rng, 0.6, 1.0))
        if shape == "rect" and rng.random() < 0.5:  # apron
            ah = _u(rng, 0.04, 0.1)
            xs, zs = abs(corners[0][0]), abs(corners[0][1])
            for s in (-1, 1):
                b.box((s * xs, under - ah / 2, 0), (0.012, ah / 2, zs), mat=1)
                b.box((0, under - ah / 2, s * zs), (xs, ah / 2, 0.012), mat=1)
        if shape == "rect" and rng.random() < 0.25:  # lower shelf
            xs, zs = abs(corners[0][0]), abs(corners[0][1])
            b.box((0, _u(rng, 0.08, 0.2), 0), (xs + r, 0.012, zs + r), mat=0)
    elif base == "pedestal":
        col = _u(rng, 0.035, 0.08)
        b.rod((0, 0.02, 0), (0, under + 0.005, 0), col * _u(rng, 1.0, 1.8), col, mat=1)
        if rng.random() < 0.5:
            b.frustum((0, 0.015, 0), _u(rng, 0.18, 0.32), 0.015, mat=1, taper=_u(rng, 0.7, 1.0))
        else:
            reach = _u(rng, 0.2, 0.32)
            for a in (0.0, math.pi / 2):
                b.box((0, 0.025, 0), (0.025, 0.025, reach), mat=1, rot=rot_y(a))
    else:  # trestle: two end panels with feet and a stretcher
        inset, pt = _u(rng, 0.06, 0.15), _u(rng, 0.025, 0.05)
        for sx in (-1, 1):
            x = sx * (lx / 2 - inset)
            b.box((x, under / 2, 0), (pt / 2, under / 2, lz * _u(rng, 0.15, 0.3)), mat=1)
            b.box((x, 0.025, 0), (pt / 2 + 0.01, 0.025, lz * 0.4), mat=1)
        b.box((0, under * _u(rng, 0.25, 0.5), 0), (lx / 2 - inset, 0.025, 0.015), mat=1)
    return b.build([top_c, leg_c])


def sofa(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    body = _colour(rng, FABRIC)
    cush = np.clip(body * rng.uniform(0.9, 1.15), 0, 1)
    legs_c = _colour(rng, _choice(rng, (WOOD, METAL)))
    w, d = _u(rng, 1.3, 2.0), _u(rng, 0.6, 0.9)
    seat_h, leg_h = _u(rng, 0.32, 0.45), (_u(rng, 0.04, 0.1) if rng.random() < 0.6 else 0.0)
    ct, bt = _u(rng, 0.06, 0.12), _u(rng, 0.12, 0.25)
    top = _u(rng, 0.7, 0.95)
    arms = rng.random() < 0.9
    aw = _u(rng, 0.1, 0.22) if arms else 0.0
    base_top = seat_h - ct
    b.box((0, (leg_h + base_top) / 2, 0), (w / 2, (base_top - leg_h) / 2, d / 2), mat=0)
    b.box((0, (leg_h + top) / 2, d / 2 - bt / 2), (w / 2, (top - leg_h) / 2, bt / 2), mat=0)
    n = int(rng.integers(1, 4))
    inner = w - 2 * aw
    for i in range(n):
        x = (i + 0.5) / n * inner - inner / 2
        b.box((x, base_top + ct / 2, -bt / 2), (inner / n / 2 - 0.006, ct / 2, (d - bt) / 2), mat=1)
        if rng.random() < 0.5:
            b.box((x, seat_h + (top - seat_h) * 0.42, d / 2 - bt - 0.04), (inner / n / 2 - 0.01, (top - seat_h) * 0.38,
                  0.05), mat=1, rot=rot_x(_u(rng, 0.05, 0.2)))
    if arms:
        ah = seat_h + _u(rng, 0.1, 0.3)
        round_top = rng.random() < 0.5
        for sx in (-1, 1):
            x = sx * (w / 2 - aw / 2)
            b.box((x, (leg_h + ah) / 2, 0), (aw / 2, (ah - leg_h) / 2, d / 2), mat=0)
            if round_top:
                b.frustum((x, ah, 0), aw / 2 * 1.05, d / 2, aw / 2 * 0.8, mat=0, rot=rot_x(math.pi / 2))
    if rng.random() < 0.2:  # chaise of an L-shaped sectional
        sx, cw, cl = float(rng.choice([-1, 1])), _u(rng, 0.5, 0.7), _u(rng, 0.5, 0.8)
        xc = sx * (w / 2 - aw - cw / 2)
        b.box((xc, (leg_h + seat_h) / 2, -d / 2 - cl / 2 + 0.01), (cw / 2, (seat_h - leg_h) / 2, cl / 2), mat=1)
    if leg_h > 0:
        for sx in (-1, 1):
            for sz in (-1, 1):
                b.rod((sx * (w / 2 - 0.05), 0, sz * (d / 2 - 0.05)), (sx * (w / 2 - 0.05), leg_h + 0.01,
                      sz * (d / 2 - 0.05)), 0.022, 0.03, mat=2)
    return b.build([body, cush, legs_c])


def bench(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    seat_c = _colour(rng, _choice(rng, (WOOD, WOOD, METAL, PAINT)))
    frame_c = _colour(rng, _choice(rng, (METAL, WOOD))) if rng.random() < 0.6 else seat_c
    lx, lz, h, t = _u(rng, 1.0, 1.6), _u(rng, 0.3, 0.5), _u(rng, 0.38, 0.48), _u(rng, 0.03, 0.07)
    if rng.random() < 0.5:
        n = int(rng.integers(3, 6))
        gap = _u(rng, 0.01, 0.03)
        for i in range(n):
            z = (i + 0.5) / n * lz - lz / 2
            b.box((0, h - t / 2, z), (lx / 2, t / 2, lz / n / 2 - gap / 2), mat=0)
    else:
        b.box((0, h - t / 2, 0), (lx / 2, t / 2, lz / 2), mat=0)
    under = h - t
    legs = _choice(rng, ("four", "panels", "aframe"))
    inset = _u(rng, 0.05, 0.2)
    if legs == "four":
        r = _u(rng, 0.02, 0.04)
        _slab_legs(b, rng, [(sx * (lx / 2 - inset), sz * (lz / 2 - r - 0.02)) for sx in (-1, 1) for sz in (-1, 1)],
                   under + 0.005, r, 1, rng.random() < 0.5, 0.0)
    elif legs == "panels":
        pt = _u(rng, 0.03, 0.07)
        for sx in (-1, 1):
            b.box((sx * (lx / 2 - inset), under / 2, 0), (pt / 2, under / 2 + 0.003, lz / 2 * 0.95), mat=1)
    else:
        r = _u(rng, 0.014, 0.025)
        for sx in (-1, 1):
            x = sx * (lx / 2 - inset)
            for sz in (-1, 1):
                b.rod((x, 0, sz * lz / 2 * 1.1), (x, under + 0.005, sz * lz / 4), r, mat=1)
            b.rod((x, under * 0.4, -lz / 2 * 0.8), (x, under * 0.4, lz / 2 * 0.8), r, mat=1)
    if rng.random() < 0.5:  # backrest
        bh, tilt = _u(rng, 0.2, 0.45), _u(rng, 0.05, 0.3)
        rb = rot_x(tilt)
        base = np.array([0, h, lz / 2 - 0.03])
        for sx in (-1, 1):
            b.box(base + rb @ np.array([sx * (lx / 2 - inset), bh / 2, 0]), (0.02, bh / 2 + 0.03, 0.02), mat=1, rot=rb)
        nb = int(rng.integers(1, 4))
        for i in range(nb):
            y = bh * (0.3 + 0.65 * (i + 1) / nb)
            b.box(base + rb @ np.array([0, y - bh * 0.12, -0.025]), (lx / 2 * 0.98, bh * 0.1, 0.015), mat=0, rot=rb)
        if rng.random() < 0.5:
            ah = _u(rng, 0.15, 0.25)
            for sx in (-1, 1):
                x = sx * (lx / 2 - inset + 0.02)
                b.box((x, h + ah, 0), (0.025, 0.02, lz / 2), mat=1)
                b.rod((x, h - t, -lz / 2 + 0.04), (x, h + ah, -lz / 2 + 0.04), 0.016, mat=1)
    return b.build([seat_c, frame_c])


def cabinet(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    body_c = _colour(rng, _choice(rng, (WOOD, WOOD, PLASTIC, PAINT)))
    front_c = np.clip(body_c * rng.uniform(0.8, 1.2), 0, 1) if rng.random() < 0.6 else _colour(rng, WOOD)
    w, hc, d = _u(rng, 0.4, 1.0), _u(rng, 0.4, 1.3), _u(rng, 0.3, 0.6)
    foot = _choice(rng, ("plinth", "legs", "none"))
    y0 = 0.0
    if foot == "plinth":
        y0 = _u(rng, 0.04, 0.1)
        b.box((0, y0 / 2, 0.01), (w / 2 - 0.02, y0 / 2, d / 2 - 0.02), mat=0)
    elif foot == "legs":
        y0 = _u(rng, 0.06, 0.2)
        for sx in (-1, 1):
            for sz in (-1, 1):
                x, z = sx * (w / 2 - 0.04), sz * (d / 2 - 0.04)
                b.rod((x, 0, z), (x, y0 + 0.01, z), 0.02, 0.025, mat=2)
    b.box((0, y0 + hc / 2, 0), (w / 2, hc / 2, d / 2), mat=0)
    if rng.random() < 0.5:
        ov = _u(rng, 0.01, 0.03)
        b.box((0, y0 + hc + 0.015, -ov / 2), (w / 2 + ov, 0.015, d / 2 + ov / 2), mat=0)
    # front: a grid of door / drawer panels on the -z face
    layout = _choice(rng, ("doors", "drawers", "mixed"))
    gap, pz = 0.012, -d / 2 - 0.008
    rows: list[tuple[float, float, int, str]] = []  # (y_lo, y_hi, columns, kind)
    if layout == "doors":
        rows.append((y0, y0 + hc, int(rng.integers(1, 3)), "door"))
    elif layout == "drawers":
        n = int(rng.integers(2, 6))
        cols = 2 if (w > 0.7 and rng.random() < 0.5) else 1
        rows += [(y0 + hc * i / n, y0 + hc * (i + 1) / n, cols, "drawer") for i in range(n)]
    else:
        split = y0 + hc * _u(rng, 0.55, 0.8)
        nd = int(rng.integers(1, 3))
        rows.append((y0, split, int(rng.integers(1, 3)), "door"))
        rows += [(split + (y0 + hc - split) * i / nd, split + (y0 + hc - split) * (i + 1) / nd, 1, "drawer")
                 for i in range(nd)]
    knob = rng.random() < 0.5
    for lo, hi, cols, kind in rows:
        for c in range(cols):
            x0, x1 = -w / 2 + w * c / cols, -w / 2 + w * (c + 1) / cols
            cx, cy = (x0 + x1) / 2, (lo + hi) / 2
            b.box((cx, cy, pz), ((x1 - x0) / 2 - gap, (hi - lo) / 2 - gap, 0.008), mat=1)
            if kind == "drawer":
                hx, hy = cx, cy
            else:
                hx = cx + (0.35 if cols == 1 else (0.4 if c == 0 else -0.4)) * (x1 - x0)
                hy = cy
            if knob:
                b.ellipsoid((hx, hy, pz - 0.015), (0.018, 0.018, 0.015), mat=2)
            elif kind == "drawer":
                b.box((hx, hy, pz - 0.016), (min(0.08, (x1 - x0) / 4), 0.012, 0.01), mat=2)
            else:
                b.box((hx, hy, pz - 0.016), (0.012, min(0.1, (hi - lo) / 5), 0.01), mat=2)
    return b.build([body_c, front_c, _colour(rng, METAL)])


# ------------------------------------------------------------------------------------------- vehicles
def car(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    paint, glass, tyre = _colour(rng, PAINT, 0.08), _colour(rng, DARK, 0.05), np.array([0.06, 0.06, 0.06])
    length = 1.0
    kind = _choice(rng, ("sedan", "hatch", "suv", "pickup", "sports", "van"), p=(0.3, 0.15, 0.2, 0.1, 0.15, 0.1))
    wd = _u(rng, 0.38, 0.47)
    wr, ww = _u(rng, 0.065, 0.095), _u(rng, 0.03, 0.045)
    clear = wr * _u(rng, 0.55, 0.9)
    bh = {"sedan": (0.13, 0.17), "hatch": (0.13, 0.17), "suv": (0.17, 0.23), "pickup": (0.16, 0.21),
          "sports": (0.09, 0.12), "van": (0.17, 0.22)}[kind]
    bh = _u(rng, *bh)
    top = clear + bh
    # body: front and rear halves, each with a chamfered top edge (bonnet / boot slope)
    for sz in (-1, 1):
        zc = sz * length / 4
        cham = _u(rng, 0.05, 0.15) * length
        slope = min(_u(rng, 0.4, 1.2), 0.45 * bh / cham)  # the cut drops at most 0.45 bh at the bumper
        n = np.array([0.0, 1.0, sz * slope])
        p_on = np.array([0.0, top, sz * (length / 2 - cham)])
        b.box((0, clear + bh / 2, zc), (wd / 2, bh / 2, length / 4 + 0.002), mat=0, clip=(n, n @ p_on))
    # cabin (glass) in front and rear parts with windscreen / rear-window slopes, and a roof
    ch = {"sports": (0.06, 0.09), "suv": (0.13, 0.18), "van": (0.15, 0.2),
          "pickup": (0.11, 0.15)}.get(kind, (0.1, 0.14))
    ch = _u(rng, *ch)
    if kind in ("sedan", "sports"):
        z0, z1 = _u(rng, -0.25, -0.12) * length, _u(rng, 0.18, 0.32) * length
    elif kind in ("hatch", "suv"):
        z0, z1 = _u(rng, -0.2, -0.1) * length, length / 2 - _u(rng, 0.02, 0.06)
    elif kind == "van":
        z0, z1 = -length / 2 + _u(rng, 0.1, 0.2), length / 2 - 0.03
    else:
        z0, z1 = _u(rng, -0.2, -0.12) * length, _u(rng, 0.02, 0.1) * length
    cw = wd / 2 * _u(rng, 0.8, 0.92)
    ws = _u(rng, 0.6, 1.4) if kind != "van" else _u(rng, 0.3, 0.6)  # windscreen run / rise
    rs = {"hatch": _u(rng, 0.15, 0.4), "suv": _u(rng, 0.05, 0.2), "van": 0.05,
          "pickup": 0.05}.get(kind, _u(rng, 0.5, 1.1))  # rear window run / rise
    zm = (z0 + z1) / 2
    for (za, zb), run, sz, edge in (((z0, zm), ws, -1, z0), ((zm, z1), rs, 1, z1)):
        n = np.array([0.0, run, sz * 1.0])
        p_on = np.array([0.0, top, edge])
        b.box((0, top + ch / 2 - 0.002, (za + zb) / 2), (cw, ch / 2, (zb - za) / 2 + 0.002), mat=1, clip=(n, n @ p_on))
    roof_z0, roof_z1 = z0 + ch * ws, z1 - ch * rs
    if roof_z1 - roof_z0 > 0.04:
        b.box((0, top + ch - 0.006, (roof_z0 + roof_z1) / 2), (cw + 0.004, 0.012, (roof_z1 - roof_z0) / 2), mat=0)
    if kind == "pickup":  # open bed walls behind the cab
        wh = _u(rng, 0.05, 0.08)
        for sx in (-1, 1):
            b.box((sx * (wd / 2 - 0.012), top + wh / 2, (z1 + length / 2) / 2), (0.012, wh / 2, (length / 2 - z1) / 2),
                  mat=0)
        b.box((0, top + wh / 2, length / 2 - 0.012), (wd / 2, wh / 2, 0.012), mat=0)
    # wheels (axis along x), hubs, lights
    axle = length / 2 - _u(rng, 0.15, 0.21) * length
    for sz in (-1, 1):
        for sx in (-1, 1):
            x = sx * (wd / 2 - ww / 2 + 0.008)
            b.frustum((x, wr, sz * axle), wr, ww / 2, mat=2, rot=rot_z(math.pi / 2))
            b.frustum((x + sx * ww / 2, wr, sz * axle), wr * 0.55, 0.006, mat=3, rot=rot_z(math.pi / 2))
    for sx in (-1, 1):
        b.box((sx * wd * 0.33, top - bh * 0.62, -length / 2 - 0.002), (wd * 0.09, bh * 0.1, 0.008), mat=4)
        b.box((sx * wd * 0.35, top - bh * 0.62, length / 2 + 0.002), (wd * 0.08, bh * 0.08, 0.008), mat=5)
    head, tail = np.array([0.95, 0.95, 0.85]), np.array([0.75, 0.08, 0.08])
    return b.build([paint, glass, tyre, _colour(rng, METAL), head, tail])


def aeroplane(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    body = _colour(rng, ((0.9, 0.9, 0.92), (0.75, 0.77, 0.8), (0.5, 0.52, 0.55), (0.35, 0.4, 0.3)))
    trim = _colour(rng, PAINT)
    length = 1.0
    fr = _u(rng, 0.035, 0.07)
    nose, tail = _u(rng, 0.08, 0.18), _u(rng, 0.15, 0.3)
    zf, zt = -length / 2 + nose, length / 2 - tail
    b.rod((0, 0, zf), (0, 0, zt), fr, mat=0)
    b.ellipsoid((0, 0, zf), (fr, fr, nose), mat=0, clip=((0, 0, 1), zf))
    tail_y = fr * _u(rng, 0.2, 0.7)
    b.rod((0, 0, zt), (0, tail_y, length / 2), fr, fr * _u(rng, 0.15, 0.35), mat=0)
    # main wings: per side a box rotated by sweep and dihedral, trailing edge tapered by a clip
    span, chord = _u(rng, 0.8, 1.15), _u(rng, 0.1, 0.22)
    thick = max(0.02, chord * 0.12)
    sweep, dihedral = _u(rng, 0.0, 0.6), _u(rng, -0.05, 0.12)
    zw = _u(rng, -0.12, 0.08)
    yw = _choice(rng, (-0.6, 0.0, 0.7)) * fr
    taper = _u(rng, 0.0, 0.6)
    root = np.array([0.0, yw, zw])
    for sx in (-1, 1):
        r = rot_y(-sx * sweep) @ rot_z(sx * dihedral)
        c = root + r @ np.array([sx * span / 4, 0, 0])
        n_l = np.array([sx * taper * chord / (span / 2), 0.0, 1.0])
        b.box(c, (span / 4, thick / 2, chord / 2), mat=0, rot=r,
              clip=SolidBuilder.local_clip(r, c, n_l, chord / 2 * (1 - taper)))
    # tail: horizontal stabiliser and fin (T-tail sometimes)
    fh, fc = _u(rng, 0.1, 0.2), _u(rng, 0.1, 0.16)
    fsweep = _u(rng, 0.3, 0.75)
    rf = rot_x(fsweep)
    fbase = np.array([0.0, tail_y, length / 2 - fc * 0.6])
    b.box(fbase + rf @ np.array([0, fh / 2, 0]), (0.012, fh / 2, fc / 2), mat=1, rot=rf)
    t_tail = rng.random() < 0.2
    hs_root = fbase + rf @ np.array([0, fh, 0]) if t_tail else np.array([0.0, tail_y, length / 2 - fc * 0.5])
    hspan, hchord = _u(rng, 0.25, 0.42), _u(rng, 0.06, 0.1)
    for sx in (-1, 1):
        r = rot_y(-sx * sweep * 0.8)
        b.box(hs_root + r @ np.array([sx * hspan / 4, 0, 0]), (hspan / 4, 0.011, hchord / 2), mat=0, rot=r)
    engines = int(rng.choice([0, 2, 4], p=[0.35, 0.45, 0.2]))
    er, el = _u(rng, 0.022, 0.04), _u(rng, 0.12, 0.2)
    for i in range(engines // 2):
        frac = (0.3 + 0.35 * i) if engines == 4 else _u(rng, 0.25, 0.4)
        for sx in (-1, 1):
            x = sx * span / 2 * frac
            z = zw + abs(x) * math.tan(sweep) - chord * 0.2
            y = yw + abs(x) * math.tan(dihedral) - thick / 2 - er * 1.2
            b.rod((x, y, z - el * 0.6), (x, y, z + el * 0.4), er, er * 0.8, mat=1)
            b.box((x, y + er * 0.9, z), (0.008, er * 0.5, el * 0.25), mat=0)
    if engines == 0 and rng.random() < 0.6:  # propeller: spinner and two blades
        b.ellipsoid((0, 0, -length / 2 + 0.005), (fr * 0.5, fr * 0.5, fr * 0.6), mat=1)
        blade = _u(rng, 0.1, 0.18)
        a = _u(rng, 0, math.pi)
        b.box((0, 0, -length / 2 - 0.002), (0.012, blade, 0.008), mat=2, rot=rot_z(a))
    return b.build([body, trim, np.array([0.1, 0.1, 0.1])])


def watercraft(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    hull_c = _colour(rng, PAINT)
    deck_c = _colour(rng, (WOOD[1], (0.85, 0.85, 0.85), (0.6, 0.6, 0.62)))
    super_c = _colour(rng, ((0.92, 0.92, 0.92), (0.8, 0.8, 0.75), (0.5, 0.5, 0.55)))
    kind = _choice(rng, ("ship", "sailboat", "speedboat", "submarine"), p=(0.35, 0.3, 0.2, 0.15))
    length = 1.0
    beam = _u(rng, 0.14, 0.28) if kind != "sailboat" else _u(rng, 0.14, 0.2)
    depth = _u(rng, 0.06, 0.14)
    lying = rot_x(math.pi / 2)  # local y -> world z, local z -> world -y
    if kind == "submarine":
        r = _u(rng, 0.05, 0.08)
        b.ellipsoid((0, 0, 0), (r, r, length / 2), mat=0)
        b.rod((0, 0, -length / 2 * 0.6), (0, 0, length / 2 * 0.6), r, mat=0)
        tl, th = _u(rng, 0.08, 0.15), _u(rng, 0.06, 0.1)
        tz = _u(rng, -0.2, 0.0)
        b.box((0, r + th / 2 - 0.01, tz), (0.02, th / 2, tl / 2), mat=1)
        b.box((0, r + th * 0.6, tz), (0.09, 0.008, 0.025), mat=1)
        for a in (0.0, math.pi / 2):
            b.box((0, 0, length / 2 - 0.06), (0.09, 0.01, 0.03), mat=1, rot=rot_z(a))
        return b.build([hull_c * 0.5, super_c * 0.5])
    mid_lo, mid_hi = -length / 2 + _u(rng, 0.2, 0.35), length / 2 - _u(rng, 0.05, 0.15)
    below = ((0.0, 1.0, 0.0), 0.0)  # keep y <= 0
    b.frustum((0, 0, (mid_lo + mid_hi) / 2), beam / 2, (mid_hi - mid_lo) / 2, depth, mat=0, rot=lying, clip=below)
    bow = mid_lo + length / 2
    if rng.random() < 0.5:
        b.ellipsoid((0, 0, mid_lo), (beam / 2, depth, bow), mat=0, clip=below)
    else:
        b.frustum((0, 0, mid_lo - bow / 2), beam / 2, bow / 2, depth, taper=0.0, mat=0,
                  rot=rot_x(-math.pi / 2), clip=below)
    stern = length / 2 - mid_hi
    b.ellipsoid((0, 0, mid_hi), (beam / 2, depth, stern * 1.01), mat=0, clip=below)
    b.box((0, 0.008, (mid_lo + mid_hi) / 2), (beam / 2 * 0.92, 0.008, (mid_hi - mid_lo) / 2), mat=1)
    if kind == "ship":
        levels = int(rng.integers(1, 4))
        zc, sl = _u(rng, -0.05, 0.2), _u(rng, 0.2, 0.4)
        y = 0.0
        for i in range(levels):
            lh = _u(rng, 0.04, 0.08)
            b.box((0, y + lh / 2, zc), (beam / 2 * (0.8 - 0.15 * i), lh / 2, sl / 2 * (1 - 0.25 * i)), mat=2)
            y += lh
        if rng.random() < 0.7:
            fr = _u(rng, 0.02, 0.04)
            b.rod((0, 0, zc + sl * 0.3), (0, y + _u(rng, 0.05, 0.12), zc + sl * 0.3 + _u(rng, 0.0, 0.05)), fr, mat=3)
        b.rod((0, y - 0.01, zc - sl * 0.2), (0, y + _u(rng, 0.1, 0.25), zc - sl * 0.2), 0.011, mat=3)
        if rng.random() < 0.35:  # containers on the fore deck
            for k in range(int(rng.integers(1, 4))):
                b.box((0, 0.03, mid_lo + 0.06 + 0.09 * k), (beam / 2 * 0.7, 0.03, 0.04), mat=3)
    elif kind == "sailboat":
        mh, mz = _u(rng, 0.5, 0.9), _u(rng, -0.15, 0.0)
        b.rod((0, 0, mz), (0, mh, mz), 0.012, mat=3)
        sail_c = 2
        hs, ls = mh * _u(rng, 0.75, 0.95), _u(rng, 0.25, 0.4)
        # main sail: triangle (mast bottom, mast top, boom end) = a thin box cut along its diagonal
        c = np.array([0.0, 0.04 + hs / 2, mz + 0.015 + ls / 2])
        b.box(c, (0.006, hs / 2, ls / 2), mat=sail_c, clip=SolidBuilder.local_clip(None, c, (0, 1 / hs, 1 / ls), 0.0))
        if rng.random() < 0.7:  # jib in front of the mast
            hj, lj = hs * _u(rng, 0.7, 0.9), min(_u(rng, 0.15, 0.3), mz - (-length / 2) - 0.05)
            c = np.array([0.0, 0.03 + hj / 2, mz - 0.015 - lj / 2])
            b.box(c, (0.006, hj / 2, lj / 2), mat=sail_c,
                  clip=SolidBuilder.local_clip(None, c, (0, 1 / hj, -1 / lj), 0.0))
        b.box((0, 0.03, mz + 0.2), (beam / 2 * 0.5, 0.03, 0.08), mat=2)
    else:  # speedboat: low cabin with a raked windscreen, outboard motor
        cz, cl, chh = _u(rng, -0.1, 0.1), _u(rng, 0.15, 0.3), _u(rng, 0.04, 0.08)
        n = np.array([0.0, _u(rng, 0.8, 1.5), -1.0])
        c = np.array([0.0, chh / 2, cz])
        b.box(c, (beam / 2 * 0.75, chh / 2, cl / 2), mat=2, clip=(n, n @ np.array([0, chh, cz - cl / 2 + 0.03])))
        if rng.random() < 0.7:
            b.box((0, 0.0, length / 2 + 0.02), (0.03, 0.06, 0.025), mat=3)
    return b.build([hull_c, deck_c, super_c, _colour(rng, METAL)])


def rifle(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    metal = _colour(rng, ((0.12, 0.12, 0.13), (0.25, 0.26, 0.27), (0.4, 0.38, 0.3)))
    furn = _colour(rng, (WOOD[0], WOOD[2], (0.12, 0.12, 0.12), (0.45, 0.4, 0.28), (0.3, 0.35, 0.2)))
    rl, rh, rw = _u(rng, 0.2, 0.32), _u(rng, 0.05, 0.08), _u(rng, 0.024, 0.036)
    b.box((0, 0, 0), (rw / 2, rh / 2, rl / 2), mat=0)
    br, bl = _u(rng, 0.011, 0.018), _u(rng, 0.3, 0.5)
    by = rh * 0.15
    b.rod((0, by, -rl / 2 + 0.01), (0, by, -rl / 2 - bl), br, mat=0)
    if rng.random() < 0.7:
        hl = bl * _u(rng, 0.4, 0.8)
        if rng.random() < 0.5:
            b.rod((0, by - 0.005, -rl / 2), (0, by - 0.005, -rl / 2 - hl), _u(rng, 0.022, 0.035), mat=1)
        else:
            b.box((0, by - 0.01, -rl / 2 - hl / 2), (rw / 2 * 1.1, rh * 0.4, hl / 2), mat=1)
    if rng.random() < 0.3:
        b.rod((0, by, -rl / 2 - bl), (0, by, -rl / 2 - bl - 0.04), br * 1.6, mat=0)
    sl, drop = _u(rng, 0.22, 0.35), _u(rng, 0.05, 0.25)
    rs = rot_x(drop)
    if rng.random() < 0.75:  # solid stock, deeper at the butt
        shh = _u(rng, 0.05, 0.09)
        c = np.array([0, -rh * 0.1, rl / 2 - 0.01]) + rs @ np.array([0, 0, sl / 2])
        n_l = np.array([0.0, 1.0, -shh * 0.5 / sl])
        b.box(c, (rw / 2, shh / 2 * 1.6, sl / 2), mat=1, rot=rs, clip=SolidBuilder.local_clip(rs, c, n_l, shh / 2))
    else:  # skeleton stock: two rods and a butt plate
        p0 = np.array([0, rh * 0.3, rl / 2 - 0.01])
        p1 = p0 + rs @ np.array([0, 0, sl])
        b.rod(p0, p1, 0.012, mat=0)
        b.rod(p0 - (0, rh * 0.6, 0), p1 - (0, 0.04, 0), 0.012, mat=0)
        b.box(p1 - (0, 0.02, 0), (rw / 2, 0.05, 0.012), mat=1, rot=rs)
    rg = rot_x(-_u(rng, 0.2, 0.45))
    gh = _u(rng, 0.04, 0.06)
    gtop = np.array([0, -rh / 2, rl / 2 - _u(rng, 0.04, 0.08)])
    b.box(gtop + rg @ np.array([0, -gh, 0]), (rw / 2 * 0.9, gh + 0.005, 0.018), mat=1, rot=rg)
    b.box((0, -rh / 2 - 0.012, gtop[2] - 0.045), (0.0075, 0.012, 0.03), mat=0)
    if rng.random() < 0.65:
        rm = rot_x(-_u(rng, -0.35, 0.0))
        mh = _u(rng, 0.05, 0.1)
        mtop = np.array([0, -rh / 2, -rl / 2 + _u(rng, 0.05, 0.1)])
        b.box(mtop + rm @ np.array([0, -mh, 0]), (rw / 2 * 0.8, mh + 0.005, _u(rng, 0.022, 0.035)), mat=0, rot=rm)
    if rng.random() < 0.5:
        sr, slen = _u(rng, 0.014, 0.022), _u(rng, 0.15, 0.25)
        sy = rh / 2 + sr + 0.015
        b.rod((0, sy, slen / 2), (0, sy, -slen / 2), sr, mat=0)
        b.rod((0, sy, -slen / 2), (0, sy, -slen / 2 - 0.04), sr, sr * 1.5, mat=0)
        for z in (-slen / 4, slen / 4):
            b.box((0, rh / 2 + 0.01, z), (0.008, 0.012, 0.01), mat=0)
    if rng.random() < 0.15:  # bipod
        z = -rl / 2 - bl * 0.6
        for sx in (-1, 1):
            b.rod((0, by - br, z), (sx * 0.04, by - 0.15, z - 0.02), 0.011, mat=0)
    return b.build([metal, furn])


# ------------------------------------------------------------------------------------------- electronics, lamps
def display(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    bezel = _colour(rng, PLASTIC)
    screen = _colour(rng, ((0.04, 0.05, 0.08), (0.1, 0.15, 0.3), (0.15, 0.25, 0.35)))
    w = _u(rng, 0.5, 0.9)
    hs, dep = w * _u(rng, 0.5, 0.8), _u(rng, 0.02, 0.05)
    style = _choice(rng, ("stand", "legs", "crt", "wall"), p=(0.6, 0.15, 0.15, 0.1))
    stand_h = _u(rng, 0.06, 0.2) if style != "wall" else 0.0
    base_t = 0.012 if style != "wall" else 0.0
    y0 = base_t + stand_h
    cy = y0 + hs / 2
    b.box((0, cy, 0), (w / 2, hs / 2, dep / 2), mat=0)
    bz, chin = _u(rng, 0.01, 0.04), _u(rng, 0.0, 0.04)
    b.box((0, cy + chin / 2, -dep / 2 - 0.003), (w / 2 - bz, hs / 2 - bz - chin / 2, 0.006), mat=1)
    if style == "crt":
        dd = w * _u(rng, 0.4, 0.7)
        b.box((0, cy, dep / 2 + dd * 0.25), (w / 2 * 0.92, hs / 2 * 0.92, dd * 0.25), mat=0)
        b.box((0, cy + hs * 0.05, dep / 2 + dd * 0.7), (w / 2 * 0.6, hs / 2 * 0.6, dd * 0.25), mat=0)
        b.box((0, y0 / 2 + 0.01, dd / 3), (w * 0.3, y0 / 2 + 0.01, dd / 3), mat=0)
    elif rng.random() < 0.5:
        b.box((0, cy, dep / 2 + 0.015), (w / 2 * _u(rng, 0.4, 0.8), hs / 2 * _u(rng, 0.4, 0.8), 0.015), mat=0)
    if style == "stand":
        nw = _u(rng, 0.02, 0.05)
        tilt = _u(rng, -0.15, 0.05)
        rn = rot_x(tilt)
        nz = dep / 2 + 0.012
        b.box((0, base_t + (stand_h + hs * 0.3) / 2, nz), (nw, (stand_h + hs * 0.3) / 2, 0.012), mat=0, rot=rn)
        if rng.random() < 0.6:
            bw, bd = _u(rng, 0.12, 0.25), _u(rng, 0.08, 0.15)
            b.box((0, base_t / 2 + 0.002, nz - 0.02), (bw, base_t / 2 + 0.002, bd), mat=0)
        else:
            b.frustum((0, base_t / 2 + 0.002, nz - 0.02), _u(rng, 0.1, 0.18), base_t / 2 + 0.002, mat=0)
    elif style == "legs":
        for sx in (-1, 1):
            x = sx * w * _u(rng, 0.3, 0.42)
            b.box((x, (y0 + 0.04) / 2, 0), (0.015, (y0 + 0.04) / 2, 0.012), mat=0, rot=rot_x(0.0))
            b.box((x, 0.008, 0), (0.02, 0.008, _u(rng, 0.06, 0.1)), mat=0)
    return b.build([bezel, screen])


def speaker(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    cab = _colour(rng, (WOOD[0], WOOD[2], (0.1, 0.1, 0.1), (0.85, 0.85, 0.85), (0.25, 0.25, 0.27)))
    driver, cap = _colour(rng, DARK), _colour(rng, ((0.6, 0.6, 0.62), (0.15, 0.15, 0.15), (0.8, 0.7, 0.3)))
    style = _choice(rng, ("tower", "bookshelf", "cube", "cylinder"), p=(0.3, 0.35, 0.2, 0.15))
    y0 = 0.0
    if style == "tower":
        w, h, d = _u(rng, 0.2, 0.3), _u(rng, 0.8, 1.1), _u(rng, 0.25, 0.35)
        y0 = _u(rng, 0.02, 0.04)
        for sx in (-1, 1):
            for sz in (-1, 1):
                x, z = sx * (w / 2 - 0.03), sz * (d / 2 - 0.03)
                b.rod((x, 0, z), (x, y0 + 0.005, z), 0.012, 0.02, mat=2)
    elif style == "bookshelf":
        w, h, d = _u(rng, 0.2, 0.3), _u(rng, 0.3, 0.45), _u(rng, 0.2, 0.3)
        if rng.random() < 0.4:
            y0 = _u(rng, 0.4, 0.6)
            b.rod((0, 0.01, 0), (0, y0, 0), _u(rng, 0.02, 0.035), mat=2)
            b.box((0, 0.01, 0), (w / 2 * 1.2, 0.01, d / 2 * 1.1), mat=2)
            b.box((0, y0 - 0.008, 0), (w / 2, 0.008, d / 2), mat=2)
    elif style == "cube":
        w = h = d = _u(rng, 0.3, 0.5)
    else:
        w = d = 2 * _u(rng, 0.1, 0.2)
        h = _u(rng, 0.3, 0.8)
    taper = _u(rng, 0.85, 1.0) if style == "cylinder" else 1.0
    if style == "cylinder":
        b.frustum((0, y0 + h / 2, 0), w / 2, h / 2, mat=0, taper=taper)
    else:
        b.box((0, y0 + h / 2, 0), (w / 2, h / 2, d / 2), mat=0)
    # drivers on the front: a woofer or two and a tweeter, from the bottom up
    n_woof = {"tower": int(rng.integers(1, 4)), "bookshelf": 1, "cube": 1, "cylinder": int(rng.integers(1, 3))}[style]
    wr = min(w * _u(rng, 0.3, 0.42), h / (2 * n_woof + 2.5))
    tr = min(w * _u(rng, 0.1, 0.16), wr * 0.6)
    slots = [("w", wr)] * n_woof + [("t", tr)]
    total = sum(2 * r for _, r in slots) + 0.03 * (len(slots) - 1)
    y = y0 + h / 2 - total / 2 + (h * 0.1 if style == "tower" else 0.0)
    for kind, r in slots:
        yc = y + r
        z = -w / 2 * (1 + (taper - 1) * (yc - y0) / h) if style == "cylinder" else -d / 2
        b.frustum((0, yc, z - 0.006), r, 0.008, mat=1, rot=rot_x(math.pi / 2))
        b.ellipsoid((0, yc, z - 0.012), (max(r * 0.35, 0.014), max(r * 0.35, 0.014), max(r * 0.2, 0.009)), mat=3)
        y += 2 * r + 0.03
    if style in ("tower", "cube") and rng.random() < 0.4:
        b.frustum((w * 0.2, y0 + h * 0.12, -d / 2 - 0.004), 0.025, 0.008, mat=1, rot=rot_x(math.pi / 2))
    return b.build([cab, driver, _colour(rng, METAL), cap])


def telephone(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    body = _colour(rng, (PLASTIC[0], PLASTIC[1], PLASTIC[2], (0.8, 0.72, 0.6), (0.55, 0.1, 0.1)))
    screen = _colour(rng, DARK)
    keys = _colour(rng, ((0.7, 0.7, 0.72), (0.2, 0.2, 0.22)))
    style = _choice(rng, ("smartphone", "candybar", "desk"), p=(0.6, 0.2, 0.2))
    if style == "smartphone":
        w, h, t = _u(rng, 0.45, 0.56), 1.0, _u(rng, 0.05, 0.09)
        b.box((0, h / 2, 0), (w / 2, h / 2, t / 2), mat=0)
        bz, top, bot = _u(rng, 0.015, 0.04), _u(rng, 0.03, 0.1), _u(rng, 0.03, 0.12)
        b.box((0, (bot + h - top) / 2, -t / 2 - 0.002), (w / 2 - bz, (h - top - bot) / 2, 0.006), mat=1)
        if rng.random() < 0.7:  # camera bump on the back
            b.box((w / 2 * _u(rng, -0.4, 0.4), h - 0.12, t / 2 + 0.006), (_u(rng, 0.05, 0.12), 0.06, 0.008), mat=1)
        b.box((w / 2 + 0.004, h * 0.7, 0), (0.006, _u(rng, 0.04, 0.08), t / 4), mat=2)
    elif style == "candybar":
        w, h, t = _u(rng, 0.35, 0.45), 1.0, _u(rng, 0.1, 0.16)
        b.box((0, h / 2, 0), (w / 2, h / 2, t / 2), mat=0)
        b.box((0, h * 0.72, -t / 2 - 0.002), (w / 2 * 0.8, h * 0.16, 0.006), mat=1)
        kx, ky = w * 0.24, h * 0.08
        for i in range(4):
            for j in range(3):
                b.box(((j - 1) * kx, h * 0.42 - i * ky, -t / 2 - 0.004), (kx * 0.38, ky * 0.35, 0.006), mat=2)
        if rng.random() < 0.3:
            b.rod((w * 0.35, h - 0.01, 0), (w * 0.35, h + _u(rng, 0.1, 0.25), 0), 0.014, mat=0)
    else:  # desk phone: base with a sloped top, handset on top, keypad on the slope
        w, d, h = _u(rng, 0.6, 0.8), _u(rng, 0.6, 0.8), _u(rng, 0.12, 0.2)
        slope = _u(rng, 0.2, 0.45)
        n = np.array([0.0, 1.0, -math.tan(slope)])
        b.box((0, h / 2, 0), (w / 2, h / 2, d / 2), mat=0, clip=(n, n @ np.array([0, h, d / 2])))
        hz, hr = d * 0.3, _u(rng, 0.03, 0.045)
        hy = h - (d / 2 - hz) * math.tan(slope) + 0.045
        b.rod((-w * 0.4, hy, hz), (w * 0.4, hy, hz), hr, mat=0)
        for sx in (-1, 1):
            b.ellipsoid((sx * w * 0.4, hy - 0.02, hz), (0.07, 0.05, 0.09), mat=0)
        rk = rot_x(-slope)
        kx = w * 0.1
        for i in range(4):
            for j in range(3):
                z = -d * 0.3 + i * kx * 1.1
                y = h - (d / 2 - z) * math.tan(slope) + 0.004
                b.box(((j - 1) * kx, y, z), (kx * 0.38, 0.008, kx * 0.38), mat=2, rot=rk)
    return b.build([body, screen, keys])


def lamp(rng: np.random.Generator) -> Solid:
    b = SolidBuilder()
    metal, shade = _colour(rng, (METAL[0], METAL[1], METAL[3], WOOD[0], (0.75, 0.6, 0.3))), _colour(rng, SHADE, 0.06)
    style = _choice(rng, ("floor", "table", "desk", "globe", "arc"), p=(0.25, 0.3, 0.2, 0.1, 0.15))
    pr = _u(rng, 0.012, 0.02)

    def shade_at(top_center, kind=None):
        kind = kind or _choice(rng, ("drum", "coolie", "bell", "sphere"))
        sh = _u(rng, 0.12, 0.28)
        rb = _u(rng, 0.12, 0.25)
        cx, cy, cz = top_center
        if kind == "sphere":
            b.ellipsoid((cx, cy - sh / 2, cz), (rb * 0.8, sh / 2 * 1.1, rb * 0.8), mat=1)
        elif kind == "bell":
            b.ellipsoid((cx, cy - sh * 0.2, cz), (rb, sh * 0.8, rb), mat=1, clip=((0, -1, 0), -(cy - sh * 0.7)))
        else:
            taper = _u(rng, 0.8, 1.0) if kind == "drum" else _u(rng, 0.3, 0.6)
            b.frustum((cx, cy - sh / 2, cz), rb, sh / 2, taper=taper, mat=1)
        return sh

    base_r = _u(rng, 0.1, 0.18)
    if style in ("floor", "arc", "globe"):
        b.frustum((0, 0.015, 0), base_r, 0.015, taper=_u(rng, 0.6, 1.0), mat=0)
        ph = _u(rng, 1.0, 1.5)
        if style == "arc":
            b.rod((0, 0.02, 0), (0, ph, 0), pr, mat=0)
            reach = _u(rng, 0.35, 0.6)
            tip = np.array([0.0, ph + _u(rng, 0.0, 0.15), -reach])
            b.rod((0, ph, 0), tip, pr, mat=0)
            b.rod(tip, tip - (0, 0.08, 0), pr, mat=0)
            b.frustum(tip - (0, 0.08 + 0.1, 0), _u(rng, 0.14, 0.22), 0.1, taper=_u(rng, 0.15, 0.4), mat=1)
        elif style == "globe":
            b.rod((0, 0.02, 0), (0, ph, 0), pr, mat=0)
            n = int(rng.integers(1, 4))
            for i in range(n):
                a = 2 * math.pi * i / n + _u(rng, 0, 1)
                off = np.array([math.cos(a), 0, math.sin(a)]) * (0.15 if n > 1 else 0.0)
                gr = _u(rng, 0.08, 0.15)
                top = np.array([0, ph - 0.05 * i, 0])
                if n > 1:
                    b.rod(top, top + off, pr, mat=0)
                b.ellipsoid(top + off + (0, gr * 0.9, 0), (gr, gr, gr), mat=1)
        else:
            b.rod((0, 0.02, 0), (0, ph, 0), pr, mat=0)
            shade_at((0, ph + _u(rng, 0.0, 0.1), 0))
    elif style == "table":
        body_h = _u(rng, 0.15, 0.35)
        if rng.random() < 0.5:
            b.ellipsoid((0, body_h / 2, 0), (_u(rng, 0.07, 0.14), body_h / 2, _u(rng, 0.07, 0.14)), mat=0)
        else:
            b.frustum((0, body_h / 2, 0), _u(rng, 0.06, 0.12), body_h / 2, taper=_u(rng, 0.4, 1.3), mat=0)
        nh = _u(rng, 0.1, 0.25)
        b.rod((0, body_h * 0.9, 0), (0, body_h + nh, 0), pr, mat=0)
        shade_at((0, body_h + nh + _u(rng, 0.03, 0.1), 0), _choice(rng, ("drum", "coolie", "bell")))
    else:  # desk lamp: base, two arm segments, cone shade pointing down and forward
        b.frustum((0, 0.015, 0), base_r, 0.015, taper=0.9, mat=0)
        a1, l1 = _u(rng, -0.5, 0.3), _u(rng, 0.3, 0.5)
        j1 = np.array([0.0, 0.03, 0.0]) + l1 * np.array([0.0, math.cos(a1), math.sin(a1)])
        b.rod((0, 0.03, 0), j1, pr, mat=0)
        b.ellipsoid(j1, (0.022, 0.022, 0.022), mat=0)
        a2, l2 = _u(rng, -2.2, -1.2), _u(rng, 0.25, 0.45)
        j2 = j1 + l2 * np.array([0.0, math.cos(a2), math.sin(a2)])
        b.rod(j1, j2, pr, mat=0)
        look = np.array([0.0, -1.0, -_u(rng, 0.2, 1.0)])
        look /= np.linalg.norm(look)
        sl, sr = _u(rng, 0.1, 0.18), _u(rng, 0.07, 0.12)
        # cone from a narrow back at the joint to the wide mouth
        b.rod(j2 - look * 0.01, j2 + look * sl, sr * _u(rng, 0.2, 0.4), sr, mat=1)
    return b.build([metal, shade])


BUILDERS: dict[str, Callable[[np.random.Generator], Solid]] = {
    "02691156": aeroplane, "02828884": bench, "02933112": cabinet, "02958343": car, "03001627": chair,
    "03211117": display, "03636649": lamp, "03691459": speaker, "04090263": rifle, "04256520": sofa,
    "04379243": table, "04401088": telephone, "04530566": watercraft}


def build_object(synset: str, rng: np.random.Generator) -> Solid:
    """A random instance of category ``synset`` (one of :data:`CATEGORIES`), in the builder's own units."""
    if synset not in BUILDERS:
        raise ValueError(f"unknown ShapeNet synset {synset!r}; expected one of {sorted(BUILDERS)}")
    return BUILDERS[synset](rng)
