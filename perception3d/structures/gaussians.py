"""``Gaussians``: a batch of 3D Gaussians (GaussianFormer / GaussianFusion scene carriers).

Fields (one dtype and device; any of them may require grad):

* ``means`` (G, 3) metres, in the frame the Gaussians were made in (inside models: the sample's lidar frame);
* ``scales`` (G, 3) > 0, the standard deviations along the Gaussian's own axes (already activated);
* ``rotations`` (G, 4) unit quaternions **(w, x, y, z)**, normalised on construction; R rotates the Gaussian's
  axes into the frame, so **Σ = R S² Rᵀ** and Σ⁻¹ = R S⁻² Rᵀ with S = diag(scales) (closed form: no inversion,
  no host round trip; :func:`perception3d.ops.gaussian_splat.gaussian_covariance`);
* ``opacities`` (G,) in [0, 1] (default 1); ``features`` (G, C) (default C = 0);
* batching by ``offsets`` (B + 1,) int64 cumulative counts: sample b owns rows ``offsets[b]:offsets[b+1]`` (rows
  of a sample are contiguous, as the ops expect); ``batch_idx`` is derived from it.

Transforms return new ``Gaussians`` (they never modify the tensors in place, so they compose with autograd) and
move means and covariances exactly as :class:`~perception3d.structures.Boxes3D` moves centres and headings:
``rotate`` (counter-clockwise about +z), ``translate``, ``flip`` ("horizontal": y -> -y, "vertical": x -> -x)
and ``transform`` (any 4x4 rigid matrix, reflections included). A reflection F maps Σ to F Σ Fᵀ; the quaternion
stored is one whose rotation gives that Σ (for a flip, F R F).
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from perception3d.ops.gaussian_splat import gaussian_covariance, quaternion_to_rotation

from .ellipsoids import ellipsoid_mesh_arrays, unit_sphere  # noqa: F401  (unit_sphere: part of this module's API)

_NAME = "Gaussians"


def _err(msg: str) -> ValueError:
    return ValueError(f"{_NAME}: {msg}")


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a ⊗ b of (..., 4) (w, x, y, z) quaternions: R(a ⊗ b) = R(a) R(b)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], -1)


def matrix_to_quaternion(r: np.ndarray) -> np.ndarray:
    """A proper 3x3 rotation matrix -> its (w, x, y, z) unit quaternion with w >= 0 (float64; Shepperd's method:
    the largest of the four squared components is taken as the pivot, so the result is stable)."""
    r = np.asarray(r, dtype=np.float64)
    tr = np.trace(r)
    cands = np.array([tr, r[0, 0], r[1, 1], r[2, 2]])
    i = int(np.argmax(cands))
    if i == 0:
        w = math.sqrt(max(1.0 + tr, 0.0)) / 2
        q = [w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)]
    elif i == 1:
        x = math.sqrt(max(1.0 + r[0, 0] - r[1, 1] - r[2, 2], 0.0)) / 2
        q = [(r[2, 1] - r[1, 2]) / (4 * x), x, (r[0, 1] + r[1, 0]) / (4 * x), (r[0, 2] + r[2, 0]) / (4 * x)]
    elif i == 2:
        y = math.sqrt(max(1.0 - r[0, 0] + r[1, 1] - r[2, 2], 0.0)) / 2
        q = [(r[0, 2] - r[2, 0]) / (4 * y), (r[0, 1] + r[1, 0]) / (4 * y), y, (r[1, 2] + r[2, 1]) / (4 * y)]
    else:
        z = math.sqrt(max(1.0 - r[0, 0] - r[1, 1] + r[2, 2], 0.0)) / 2
        q = [(r[1, 0] - r[0, 1]) / (4 * z), (r[0, 2] + r[2, 0]) / (4 * z), (r[1, 2] + r[2, 1]) / (4 * z), z]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


class Gaussians:
    """A batch of 3D Gaussians; see the module docstring for the fields and conventions.

    Args:
        means, scales, rotations: (G, 3), (G, 3), (G, 4) float tensors (rotations need not be unit: they are
            normalised here, differentiably).
        opacities: (G,) (default ones); features: (G, C) (default (G, 0)).
        offsets: (B + 1,) int cumulative Gaussian counts per sample (default: one sample, [0, G]).
        validate: check values (scales > 0, finite, non-zero quaternions, opacities in [0, 1], offsets); this
            synchronises with the device, so hot loops may pass False after checking once.
    """

    def __init__(self, means: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor,
                 opacities: Optional[torch.Tensor] = None, features: Optional[torch.Tensor] = None,
                 offsets: Optional[torch.Tensor] = None, validate: bool = True):
        fields = dict(means=means, scales=scales, rotations=rotations)
        for name, t in fields.items():
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{_NAME}: `{name}` must be a torch.Tensor, got {type(t).__name__}")
        if means.dim() != 2 or means.shape[1] != 3:
            raise _err(f"`means` must have shape (G, 3), got {tuple(means.shape)}")
        if not means.is_floating_point():
            raise TypeError(f"{_NAME}: `means` must be floating point, got {means.dtype}")
        g = means.shape[0]
        if opacities is None:
            opacities = means.new_ones(g)
        if features is None:
            features = means.new_zeros(g, 0)
        fields.update(opacities=opacities, features=features)
        want = dict(means=(g, 3), scales=(g, 3), rotations=(g, 4), opacities=(g,), features=(g, None))
        for name, t in fields.items():
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{_NAME}: `{name}` must be a torch.Tensor, got {type(t).__name__}")
            shape = want[name]
            if t.dim() != len(shape) or any(w is not None and s != w for s, w in zip(t.shape, shape)):
                shown = "(" + ", ".join("C" if w is None else str(w) for w in shape) + ("," if len(shape) == 1 else "") + ")"
                raise _err(f"`{name}` must have shape {shown} (G = {g} from `means`), got {tuple(t.shape)}")
            if t.dtype != means.dtype or t.device != means.device:
                raise TypeError(f"{_NAME}: `{name}` is {t.dtype} on {t.device}, `means` is {means.dtype} on "
                                f"{means.device}; all fields must share dtype and device")
        if offsets is None:
            offsets = torch.tensor([0, g], dtype=torch.int64, device=means.device)
        if not isinstance(offsets, torch.Tensor) or offsets.dim() != 1 or offsets.numel() < 2 \
                or offsets.dtype not in (torch.int32, torch.int64):
            raise _err(f"`offsets` must be a 1-D int tensor (B + 1,) with B >= 1, got "
                       f"{offsets if not isinstance(offsets, torch.Tensor) else (tuple(offsets.shape), offsets.dtype)}")
        offsets = offsets.to(device=means.device, dtype=torch.int64)
        if validate:
            self._validate(means, scales, rotations, opacities, features, offsets)
        self.means = means
        self.scales = scales
        self.rotations = rotations / rotations.norm(dim=-1, keepdim=True)
        self.opacities = opacities
        self.features = features
        self.offsets = offsets

    @staticmethod
    def _validate(means, scales, rotations, opacities, features, offsets) -> None:
        g = means.shape[0]
        for name, t in (("means", means), ("scales", scales), ("rotations", rotations), ("opacities", opacities),
                        ("features", features)):
            bad = ~torch.isfinite(t.detach()).reshape(g, -1).all(1) if t.numel() else torch.zeros(0, dtype=torch.bool)
            if bool(bad.any()):
                row = int(bad.nonzero()[0])
                raise _err(f"`{name}` must be finite, row {row} is {t[row].tolist()}")
        bad = (scales.detach() <= 0).any(1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0])
            raise _err(f"`scales` must be > 0, row {row} is {scales[row].tolist()}")
        bad = rotations.detach().norm(dim=1) == 0
        if bool(bad.any()):
            raise _err(f"`rotations` must be non-zero (w, x, y, z) quaternions, row {int(bad.nonzero()[0])} is zero")
        bad = (opacities.detach() < 0) | (opacities.detach() > 1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0])
            raise _err(f"`opacities` must be in [0, 1], row {row} is {float(opacities[row])}")
        if int(offsets[0]) != 0 or int(offsets[-1]) != g or bool((offsets.diff() < 0).any()):
            raise _err(f"`offsets` must start at 0, end at G = {g} and be non-decreasing, got {offsets.tolist()}")

    # ----------------------------------------------------------------- views
    def __len__(self) -> int:
        return self.means.shape[0]

    def __repr__(self) -> str:
        return f"Gaussians(n={len(self)}, batch_size={self.batch_size}, channels={self.channels})"

    @property
    def batch_size(self) -> int:
        return self.offsets.numel() - 1

    @property
    def channels(self) -> int:
        return self.features.shape[1]

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def batch_idx(self) -> torch.Tensor:
        """(G,) int64 sample of each Gaussian (no host synchronisation)."""
        return torch.repeat_interleave(torch.arange(self.batch_size, device=self.device), self.offsets.diff(),
                                       output_size=len(self))

    def rotation_matrices(self) -> torch.Tensor:
        """(G, 3, 3) R of the unit quaternions (columns = the Gaussian's axes in the frame)."""
        return quaternion_to_rotation(self.rotations)

    def covariance(self) -> torch.Tensor:
        """(G, 3, 3) Σ = R S² Rᵀ."""
        return gaussian_covariance(self.scales, self.rotations)[0]

    def precision(self) -> torch.Tensor:
        """(G, 3, 3) Σ⁻¹ = R S⁻² Rᵀ (closed form)."""
        return gaussian_covariance(self.scales, self.rotations)[1]

    # ------------------------------------------------------------- container
    def _replace(self, **fields) -> "Gaussians":
        cur = dict(means=self.means, scales=self.scales, rotations=self.rotations, opacities=self.opacities,
                   features=self.features, offsets=self.offsets)
        cur.update(fields)
        return Gaussians(**cur, validate=False)

    def sample(self, i: int) -> "Gaussians":
        """The Gaussians of sample ``i`` as a batch of one."""
        if not -self.batch_size <= i < self.batch_size:
            raise IndexError(f"{_NAME}.sample: index {i} out of range for batch size {self.batch_size}")
        i %= self.batch_size
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return Gaussians(self.means[a:b], self.scales[a:b], self.rotations[a:b], self.opacities[a:b],
                         self.features[a:b], validate=False)

    @classmethod
    def cat(cls, items: Iterable["Gaussians"]) -> "Gaussians":
        """Concatenate batches: the samples of each item in order (channels must match)."""
        items = list(items)
        if not items:
            raise _err("cat needs at least one Gaussians")
        if len({x.channels for x in items}) != 1:
            raise _err(f"cat: feature channels differ: {[x.channels for x in items]}")
        offs, base = [items[0].offsets[:1]], 0
        for x in items:
            offs.append(x.offsets[1:] + base)
            base += len(x)
        return cls(*(torch.cat([getattr(x, f) for x in items]) for f in
                     ("means", "scales", "rotations", "opacities", "features")),
                   offsets=torch.cat([o.to(items[0].device) for o in offs]), validate=False)

    def to(self, *args, **kwargs) -> "Gaussians":
        moved = {f: getattr(self, f).to(*args, **kwargs) for f in ("means", "scales", "rotations", "opacities",
                                                                  "features")}
        return Gaussians(**moved, offsets=self.offsets.to(moved["means"].device), validate=False)

    def detach(self) -> "Gaussians":
        return self._replace(**{f: getattr(self, f).detach() for f in
                                ("means", "scales", "rotations", "opacities", "features")})

    # ------------------------------------------------------------ transforms
    def rotate(self, angle: float) -> "Gaussians":
        """Rotated by ``angle`` radians counter-clockwise about +z (as :meth:`Boxes3D.rotate`)."""
        c, s = math.cos(angle), math.sin(angle)
        rot = self.means.new_tensor([[c, -s], [s, c]])
        means = torch.cat([self.means[:, :2] @ rot.T, self.means[:, 2:]], 1)
        qz = self.means.new_tensor([math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)])
        return self._replace(means=means, rotations=quaternion_multiply(qz.expand_as(self.rotations), self.rotations))

    def translate(self, vector: Sequence[float]) -> "Gaussians":
        return self._replace(means=self.means + self.means.new_tensor(vector))

    def flip(self, axis: str = "horizontal") -> "Gaussians":
        """Mirrored: ``horizontal`` y -> -y (left/right), ``vertical`` x -> -x (front/back), as :meth:`Boxes3D.flip`.

        With F the mirror, Σ -> F Σ Fᵀ = (F R F) S² (F R F)ᵀ: F R F is the rotation whose quaternion keeps w and
        the mirrored axis' component and negates the other two.
        """
        if axis == "horizontal":
            col, sign = 1, self.means.new_tensor([1.0, -1.0, 1.0, -1.0])
        elif axis == "vertical":
            col, sign = 0, self.means.new_tensor([1.0, 1.0, -1.0, -1.0])
        else:
            raise _err(f"flip axis must be 'horizontal' or 'vertical', got {axis!r}")
        mirror = torch.ones(3, dtype=self.dtype, device=self.device)
        mirror[col] = -1
        return self._replace(means=self.means * mirror, rotations=self.rotations * sign)

    def transform(self, matrix: Union[np.ndarray, torch.Tensor, Sequence[Sequence[float]]]) -> "Gaussians":
        """Moved by a 4x4 rigid transform [M t; 0 1] (M orthonormal, det ±1): μ -> M μ + t, Σ -> M Σ Mᵀ.

        For det M = -1 (a reflection) the stored rotation is -M R (a proper rotation giving the same Σ).
        The matrix is read on the host (float64) and checked: last row (0, 0, 0, 1), Mᵀ M = I within 1e-5.
        """
        m = (matrix.detach().cpu().double().numpy() if isinstance(matrix, torch.Tensor)
             else np.asarray(matrix, dtype=np.float64))
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise _err(f"transform: `matrix` must be a finite 4x4 matrix, got shape {m.shape}")
        if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6):
            raise _err(f"transform: the last row of `matrix` must be (0, 0, 0, 1), got {m[3].tolist()}")
        r, t = m[:3, :3], m[:3, 3]
        if not np.allclose(r.T @ r, np.eye(3), atol=1e-5):
            raise _err(f"transform: the 3x3 block of `matrix` must be orthonormal (a rigid transform), got {r.tolist()}")
        proper = r if np.linalg.det(r) > 0 else -r
        q = self.means.new_tensor(matrix_to_quaternion(proper))
        means = self.means @ self.means.new_tensor(r).T + self.means.new_tensor(t)
        return self._replace(means=means, rotations=quaternion_multiply(q.expand_as(self.rotations), self.rotations))

    # ------------------------------------------------------------------ ops
    def splat(self, grid, mode: str = "sum", bev: bool = False, k: float = 3.0, **kwargs):
        """:func:`perception3d.ops.gaussian_splat.gaussian_splat` of these Gaussians (features required)."""
        from perception3d.ops.gaussian_splat import gaussian_splat

        return gaussian_splat(self.means, self.scales, self.rotations, self.opacities,
                              self.features if self.channels else None, grid, mode=mode, bev=bev, k=k,
                              offsets=self.offsets, **kwargs)

    # --------------------------------------------------------------- export
    def ellipsoid_mesh(self, k: float = 1.0, resolution: int = 8, colors: Optional[np.ndarray] = None,
                       min_opacity: float = 0.0) -> Dict[str, np.ndarray]:
        """The k-sigma ellipsoids {x : (x - μ)ᵀ Σ⁻¹ (x - μ) = k²} as one triangle mesh (NumPy, float64).

        Args:
            k: surface at k standard deviations.
            resolution: latitude bands of the unit sphere each ellipsoid is mapped from (:func:`unit_sphere`).
            colors: (G, 3) RGB in [0, 1] per Gaussian (default: a light blue).
            min_opacity: drop Gaussians with a lower opacity.
        Returns:
            dict ``vertices`` (G'·V, 3), ``triangles`` (G'·T, 3) int32 (counter-clockwise from outside),
            ``vertex_colors`` (G'·V, 3) and ``gaussian_index`` (G'·V,) int64: the row each vertex belongs to.
        """
        keep = np.nonzero(self.opacities.detach().cpu().double().numpy() >= min_opacity)[0]
        if colors is None:
            cols = np.tile([[0.35, 0.65, 1.0]], (len(self), 1))
        else:
            cols = np.asarray(colors, dtype=np.float64)
            if cols.shape != (len(self), 3):
                raise _err(f"ellipsoid_mesh: `colors` must have shape ({len(self)}, 3), got {cols.shape}")
        verts, faces = ellipsoid_mesh_arrays(self.means.detach().cpu().double().numpy()[keep],
                                             self.scales.detach().cpu().double().numpy()[keep],
                                             self.rotation_matrices().detach().cpu().double().numpy()[keep], k,
                                             resolution)
        nv = len(verts) // max(len(keep), 1)
        return dict(vertices=verts, triangles=faces, vertex_colors=np.repeat(cols[keep], nv, 0),
                    gaussian_index=np.repeat(keep, nv).astype(np.int64))

    def to_open3d_ellipsoids(self, k: float = 1.0, resolution: int = 8, colors: Optional[np.ndarray] = None,
                             min_opacity: float = 0.0):
        """:meth:`ellipsoid_mesh` as an ``open3d.geometry.TriangleMesh`` with vertex normals (imports open3d)."""
        import open3d as o3d

        mesh = self.ellipsoid_mesh(k, resolution, colors, min_opacity)
        out = o3d.geometry.TriangleMesh()
        out.vertices = o3d.utility.Vector3dVector(mesh["vertices"])
        out.triangles = o3d.utility.Vector3iVector(mesh["triangles"])
        out.vertex_colors = o3d.utility.Vector3dVector(mesh["vertex_colors"])
        out.compute_vertex_normals()
        return out
