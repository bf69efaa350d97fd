"""Furniture: chair, table, sofa, bench, cabinet (stand on y = 0)."""
from __future__ import annotations

import math

import numpy as np

from ..shapenet_shapes import Solid, SolidBuilder, rot_x, rot_y
from ._parts import FABRIC, METAL, PAINT, PLASTIC, WOOD, _choice, _colour, _slab_legs, _u


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
