"""Vehicles: car, aeroplane, watercraft."""
from __future__ import annotations

import math

import numpy as np

from ..shapenet_shapes import Solid, SolidBuilder, rot_x, rot_y, rot_z
from ._parts import DARK, METAL, PAINT, WOOD, _choice, _colour, _u


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
