"""Procedural scene: street + ego trajectory + annotated objects with constant velocities.

Objects are placed by rejection sampling in the street frame: a candidate is accepted only if its
footprint (street-frame bounding rectangle plus a margin) overlaps no other object, the ego
vehicle or clutter at any time on a 0.1 s grid over the whole scene, so nothing ever intersects.
Moving objects keep a constant velocity along their heading.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .classes import INTENSITY, object_parts, sample_color, sample_size
from .raycast import Primitives
from .street import KERB_H, ClutterBuilder, Street, sample_street

EGO_LWH = (4.08, 1.85, 1.6)


@dataclass
class SimObject:
    cls: str
    lwh: np.ndarray
    u0: float
    v0: float
    vel: tuple[float, float]  # street-frame (du/dt, dv/dt) m/s
    yaw_s: float  # heading in the street frame
    z0: float  # bottom z
    attribute: str  # nuScenes attribute name or ""
    color: np.ndarray
    intensity: float
    parts: np.ndarray = field(default=None)  # (K, 6) object-frame boxes


class World:
    """A scene: ``street``, ego (lane ``ego_v``, speed ``ego_speed`` along +u from u = 0 at t = 0),
    annotated ``objects`` and static clutter ``static`` primitives (global frame) with their Occ3D class names
    ``static_kind``."""

    def __init__(self, rng: np.random.Generator, duration: float, t_start: float = -0.5) -> None:
        self.rng = rng
        self.ego_speed = float(rng.uniform(3.0, 10.0))
        self.street: Street = sample_street(rng, self.ego_speed * duration)
        self.ego_v = self.street.lane_center(+1, int(rng.integers(self.street.n_lanes)))
        self.times = np.arange(t_start - 0.1, duration + 0.15, 0.1)
        self.objects: list[SimObject] = []
        self._fp = np.zeros((0, 6))  # u0, v0, vu, vv, hu, hv
        self._add_fp(0.0, self.ego_v, self.ego_speed, 0.0, EGO_LWH[0] / 2 + 1.0, EGO_LWH[1] / 2 + 0.3)
        clutter = ClutterBuilder()
        clutter.build(self.street, rng)
        for u, v, hu, hv in clutter.footprints:
            self._add_fp(u, v, 0.0, 0.0, hu, hv)
        self.static = _clutter_primitives(clutter)
        # Occ3D class name of each static primitive (boxes, cylinders, ellipsoids, as in ``static``)
        self.static_kind = np.array([r[-1] for r in clutter.boxes + clutter.cyls + clutter.ells], dtype=object)
        self._populate(duration)

    # ---------------------------------------------------------------- placement
    def _add_fp(self, u, v, vu, vv, hu, hv):
        self._fp = np.vstack([self._fp, [u, v, vu, vv, hu, hv]])

    def _free(self, u, v, vu, vv, hu, hv) -> bool:
        f, t = self._fp, self.times[None, :]
        du = np.abs((u - f[:, 0:1]) + (vu - f[:, 2:3]) * t) < hu + f[:, 4:5]
        dv = np.abs((v - f[:, 1:2]) + (vv - f[:, 3:4]) * t) < hv + f[:, 5:6]
        return not bool((du & dv).any())

    def place(self, cls: str, u: float, v: float, speed: float, yaw_s: float, attribute: str,
              z0: float = 0.0, margin: float = 0.3, lwh: np.ndarray | None = None) -> SimObject | None:
        """Add an object of class ``cls`` if its footprint stays free over the scene; else None."""
        lwh = sample_size(cls, self.rng) if lwh is None else lwh
        c, s = abs(np.cos(yaw_s)), abs(np.sin(yaw_s))
        hu = c * lwh[0] / 2 + s * lwh[1] / 2 + margin
        hv = s * lwh[0] / 2 + c * lwh[1] / 2 + margin
        vu, vv = speed * np.cos(yaw_s), speed * np.sin(yaw_s)
        if not self._free(u, v, vu, vv, hu, hv):
            return None
        self._add_fp(u, v, vu, vv, hu, hv)
        obj = SimObject(cls, lwh, u, v, (vu, vv), yaw_s, z0, attribute, sample_color(cls, self.rng),
                        float(np.clip(INTENSITY[cls] * self.rng.uniform(0.7, 1.3), 1, 255)))
        obj.parts = object_parts(cls, lwh, attribute == "cycle.with_rider")
        self.objects.append(obj)
        return obj

    def _populate(self, duration: float) -> None:
        rng, st = self.rng, self.street
        span = (st.u_min + 20, st.u_max - 20)
        near = (-15.0, self.ego_speed * duration + 35.0)
        wr, sw = st.road_half, st.sidewalk_w
        # construction zone on the kerb side of the opposite or same direction
        zd = int(rng.choice([-1, 1]))
        uz = float(rng.uniform(*near))
        v_edge = zd * st.side * (wr - 0.6)
        self.place("construction_vehicle", uz + 6, zd * st.side * (wr - 2.1), 0.0,
                   0.0 if zd > 0 else np.pi, "vehicle.stopped", margin=0.2)
        for k in range(int(rng.integers(3, 7))):
            self.place("barrier", uz + k * 2.7, zd * st.side * (wr - 4.1), 0.0, np.pi / 2, "", margin=0.05)
        for k in range(int(rng.integers(3, 8))):
            self.place("traffic_cone", uz - 3 - k * 2.0, v_edge - zd * st.side * rng.uniform(0, 2.0), 0.0,
                       rng.uniform(-np.pi, np.pi), "", margin=0.1)
        # lane traffic: per-lane speed, vehicles walked along u with random gaps
        for direction in (1, -1):
            for i in range(st.n_lanes):
                v = st.lane_center(direction, i)
                ego_lane = direction == 1 and abs(v - self.ego_v) < 1e-6
                if ego_lane:
                    speed = self.ego_speed
                elif direction == 1:
                    speed = max(0.0, self.ego_speed + rng.uniform(-3, 3)) if rng.random() > 0.15 else 0.0
                else:
                    speed = rng.uniform(3, 12) if rng.random() > 0.15 else 0.0
                u = span[0] + rng.uniform(0, 10)
                guaranteed = ["trailer", "bus", "truck", "motorcycle"] if (direction == -1 and i == 0) else []
                while u < span[1]:
                    if guaranteed and u > near[0] - 10:  # classes every scene must show, near the ego path
                        cls = guaranteed[-1]
                    else:
                        cls = str(rng.choice(["car", "truck", "bus", "motorcycle", "trailer"],
                                             p=[0.8, 0.08, 0.04, 0.05, 0.03]))
                    sp = max(0.0, speed + rng.uniform(-0.3, 0.3)) if speed > 0 else 0.0
                    attr = "vehicle.moving" if sp > 0.3 else "vehicle.stopped"
                    if cls == "motorcycle":
                        attr = "cycle.with_rider"
                    yaw = 0.0 if direction == 1 else np.pi
                    if cls == "trailer":  # truck pulling a trailer
                        lt = sample_size("trailer", rng)
                        lk = sample_size("truck", rng)
                        u_tr, u_tk = (u + lt[0] / 2, u + lt[0] + 0.6 + lk[0] / 2) if direction == 1 else \
                            (u + lk[0] + 0.6 + lt[0] / 2, u + lk[0] / 2)
                        if self.place("truck", u_tk, v, sp, yaw, attr, lwh=lk, margin=0.15) is not None:
                            if self.place("trailer", u_tr, v, sp, yaw, attr, lwh=lt, margin=0.15) and guaranteed \
                                    and guaranteed[-1] == "trailer":
                                guaranteed.pop()
                        u += lt[0] + lk[0] + rng.uniform(5, 25)
                        continue
                    ob = self.place(cls, u, v + rng.normal(0, 0.15), sp, yaw, attr)
                    if ob is not None and guaranteed and guaranteed[-1] == cls:
                        guaranteed.pop()
                    u += (ob.lwh[0] if ob is not None else 4.0) + rng.uniform(3, 25)
        # parked vehicles in parking lanes
        if st.park_w > 0:
            for direction in (1, -1):
                v = st.parking_center(direction)
                u = span[0] + rng.uniform(0, 5)
                while u < span[1]:
                    cls = str(rng.choice(["car", "truck", "motorcycle", "trailer"], p=[0.85, 0.07, 0.05, 0.03]))
                    attr = "cycle.without_rider" if cls == "motorcycle" else "vehicle.parked"
                    yaw = (0.0 if direction == 1 else np.pi) + rng.normal(0, 0.03)
                    ob = self.place(cls, u, v + rng.normal(0, 0.1), 0.0, yaw, attr, margin=0.25)
                    u += (ob.lwh[0] if ob is not None else 3.0) + rng.uniform(1.0, 12)
        # cyclists at the road edge
        for k in range(int(rng.integers(1, 4))):
            direction = int(rng.choice([-1, 1]))
            v = direction * st.side * (st.n_lanes * st.lane_w - 0.8)
            self.place("bicycle", float(rng.uniform(*near)), v, rng.uniform(3, 6), 0.0 if direction == 1 else np.pi,
                       "cycle.with_rider", margin=0.4)
        # sidewalk: pedestrians (walking along u or standing), parked bicycles at the kerb
        for side in (-1, 1):
            for k in range(int(rng.integers(5, 12))):
                v = side * rng.uniform(wr + 1.1, wr + sw - 0.5)
                u = float(rng.uniform(*span)) if k > 1 else float(rng.uniform(*near))
                if rng.random() < 0.7:
                    self.place("pedestrian", u, v, rng.uniform(1.0, 1.6), float(rng.choice([0.0, np.pi])),
                               "pedestrian.moving", z0=KERB_H, margin=0.2)
                else:
                    self.place("pedestrian", u, v, 0.0, rng.uniform(-np.pi, np.pi), "pedestrian.standing",
                               z0=KERB_H, margin=0.2)
            for k in range(int(rng.integers(1, 4))):
                self.place("bicycle", float(rng.uniform(*near)), side * (wr + 0.5), 0.0,
                           np.pi / 2 + rng.normal(0, 0.2), "cycle.without_rider", z0=KERB_H, margin=0.1)
        # pedestrians on the crosswalk (their path stays on the road surface)
        for k in range(int(rng.integers(1, 4))):
            sp = rng.uniform(1.1, 1.5)
            dirn = float(rng.choice([-1.0, 1.0]))
            path = sp * (self.times[-1] - self.times[0])
            lo, hi = -wr + 0.4, wr - 0.4 - path  # range of the path's low end
            if hi > lo:
                v_low = rng.uniform(lo, hi)
                v_t0 = v_low if dirn > 0 else v_low + path  # position at the first time of the grid
                self.place("pedestrian", st.crossing_u + rng.uniform(-1.5, 1.5), v_t0 - dirn * sp * self.times[0],
                           sp, dirn * np.pi / 2, "pedestrian.moving", margin=0.2)

    # ---------------------------------------------------------------- queries
    def ego_pose(self, t: float) -> tuple[np.ndarray, float]:
        """Ego position (3,) global (z = 0) and yaw at time t (s)."""
        xy = self.street.to_global(self.ego_speed * t, self.ego_v)
        return np.array([xy[0], xy[1], 0.0]), float(self.street.heading)

    def object_states(self, t: float) -> dict[str, np.ndarray]:
        """Global boxes at time t: ``center`` (N, 3) gravity centre, ``lwh`` (N, 3), ``yaw`` (N,),
        ``velocity`` (N, 2) global m/s."""
        n = len(self.objects)
        if n == 0:
            z = np.zeros((0, 3))
            return {"center": z, "lwh": z, "yaw": np.zeros(0), "velocity": np.zeros((0, 2))}
        u = np.array([o.u0 + o.vel[0] * t for o in self.objects])
        v = np.array([o.v0 + o.vel[1] * t for o in self.objects])
        lwh = np.stack([o.lwh for o in self.objects])
        xy = self.street.to_global(u, v)
        z = np.array([o.z0 for o in self.objects]) + lwh[:, 2] / 2
        c, s = np.cos(self.street.heading), np.sin(self.street.heading)
        vel = np.array([[c * o.vel[0] - s * o.vel[1], s * o.vel[0] + c * o.vel[1]] for o in self.objects])
        yaw = np.array([self.street.heading + o.yaw_s for o in self.objects])
        yaw = (yaw + np.pi) % (2 * np.pi) - np.pi
        return {"center": np.concatenate([xy, z[:, None]], 1), "lwh": lwh, "yaw": yaw, "velocity": vel}

    def primitives_at(self, t: float) -> Primitives:
        """All geometry at time t (global frame): clutter + posed object parts (obj = object index)."""
        st = self.object_states(t)
        s = self.static
        nbs = len(s.box_center)
        if self.objects:
            parts = np.concatenate([o.parts for o in self.objects])  # (K, 6) object-frame boxes
            owner = np.repeat(np.arange(len(self.objects)), [len(o.parts) for o in self.objects])
            loc = np.stack([(parts[:, 0] + parts[:, 1]) / 2, (parts[:, 2] + parts[:, 3]) / 2,
                            (parts[:, 4] + parts[:, 5]) / 2], 1)
            half = np.stack([(parts[:, 1] - parts[:, 0]) / 2, (parts[:, 3] - parts[:, 2]) / 2,
                             (parts[:, 5] - parts[:, 4]) / 2], 1)
            yaw = st["yaw"][owner]
            c, sn = np.cos(yaw), np.sin(yaw)
            drop = np.zeros_like(st["center"])  # from the gravity centre to the bottom centre
            drop[:, 2] = st["lwh"][:, 2] / 2
            bottom = (st["center"] - drop)[owner]
            centers = bottom + np.stack([c * loc[:, 0] - sn * loc[:, 1], sn * loc[:, 0] + c * loc[:, 1], loc[:, 2]], 1)
            cols = np.stack([o.color for o in self.objects])[owner]
            ints = np.array([o.intensity for o in self.objects])[owner]
        else:
            owner, centers, half, yaw = np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
            cols, ints = np.zeros((0, 3), np.uint8), np.zeros(0)
        color = np.concatenate([s.color[:nbs], cols, s.color[nbs:]])
        inten = np.concatenate([s.intensity[:nbs], ints, s.intensity[nbs:]])
        obj = np.concatenate([s.obj[:nbs], owner, s.obj[nbs:]])
        return Primitives(box_center=np.concatenate([s.box_center, centers]),
                          box_half=np.concatenate([s.box_half, half]), box_yaw=np.concatenate([s.box_yaw, yaw]),
                          cyl_xy=s.cyl_xy, cyl_r=s.cyl_r, cyl_z=s.cyl_z, ell_center=s.ell_center,
                          ell_radii=s.ell_radii, color=color.astype(np.uint8), intensity=inten,
                          obj=obj.astype(np.int64))


def _clutter_primitives(cb: ClutterBuilder) -> Primitives:
    b, c, e = cb.boxes, cb.cyls, cb.ells
    arr = (lambda rows, k, n: np.array([r[k] for r in rows], np.float64).reshape(len(rows), n))
    color = np.array([r[7] for r in b] + [r[5] for r in c] + [r[6] for r in e], np.uint8).reshape(-1, 3)
    inten = np.array([r[8] for r in b] + [r[6] for r in c] + [r[7] for r in e], np.float64)
    return Primitives(
        box_center=np.array([r[0:3] for r in b], np.float64).reshape(-1, 3),
        box_half=np.array([r[3:6] for r in b], np.float64).reshape(-1, 3),
        box_yaw=arr(b, 6, 1)[:, 0],
        cyl_xy=np.array([r[0:2] for r in c], np.float64).reshape(-1, 2), cyl_r=arr(c, 2, 1)[:, 0],
        cyl_z=np.array([r[3:5] for r in c], np.float64).reshape(-1, 2),
        ell_center=np.array([r[0:3] for r in e], np.float64).reshape(-1, 3),
        ell_radii=np.array([r[3:6] for r in e], np.float64).reshape(-1, 3),
        color=color, intensity=inten, obj=np.full(len(b) + len(c) + len(e), -1, np.int64))
