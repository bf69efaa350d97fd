"""Hand-held and electronic objects, lamps: rifle, display, speaker, telephone, lamp."""
from __future__ import annotations

import math

import numpy as np

from ..shapenet_shapes import Solid, SolidBuilder, rot_x
from ._parts import DARK, METAL, PLASTIC, SHADE, WOOD, _choice, _colour, _u


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
