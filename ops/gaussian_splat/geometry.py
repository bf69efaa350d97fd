"""Gaussian geometry shared by the splatting implementations (docs/ops.md, "gaussian_splat").

- closed-form rotation, covariance and precision of (scale, quaternion) Gaussians: Σ = R S² Rᵀ, Σ⁻¹ = R S⁻² Rᵀ
  (no matrix inversion, no host round trip);
- the kernel parameters every implementation takes: the precision as 6 entries (p00, p11, p22, p01, p12, p02)
  and the per-Gaussian weight ω (opacity in "sum" mode, opacity x normaliser in "prob" mode);
- the truncation plan: each Gaussian's mean voxel, per-axis radius and its cube clipped to the grid.

Everything here is index arithmetic on detached values except :func:`quaternion_to_rotation`,
:func:`gaussian_covariance` and :func:`kernel_params`, which are differentiable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence, Tuple, Union

import torch

#: α is clamped to at most this before log(1 - α) in "prob" mode (so a voxel at a mean has a finite log)
ALPHA_MAX = 1.0 - 1e-6
#: "prob" mode: voxels whose mixture mass Σ ω_i α_i is below this get uniform semantics 1 / C
PROB_EPS = 1e-9


class GridSpec(NamedTuple):
    """A voxel grid: ``point_cloud_range`` (x0, y0, z0, x1, y1, z1) metres cut into ``voxel_size`` (vx, vy, vz).

    Its shape is ``(nz, ny, nx)`` (``ops.voxelize.grid_shape``); voxel (z, y, x) is centred at
    ``(x0 + (x + 0.5) vx, y0 + (y + 0.5) vy, z0 + (z + 0.5) vz)``.
    """

    point_cloud_range: Tuple[float, float, float, float, float, float]
    voxel_size: Tuple[float, float, float]

    @property
    def shape(self) -> Tuple[int, int, int]:
        from perception3d.ops.voxelize import grid_shape

        return grid_shape(self.point_cloud_range, self.voxel_size)


GridLike = Union[GridSpec, Tuple[Sequence[float], Union[float, Sequence[float]]]]


def as_grid(grid: object, prefix: str) -> GridSpec:
    """A GridSpec from a GridSpec or a (point_cloud_range, voxel_size) pair (voxel_size a scalar or 3 values)."""
    try:
        pcr, vs = grid  # type: ignore[misc]
        pcr = tuple(float(v) for v in pcr)
        vs = (float(vs),) * 3 if isinstance(vs, (int, float)) else tuple(float(v) for v in vs)
    except (TypeError, ValueError):
        raise ValueError(f"{prefix}`grid` must be a GridSpec or (point_cloud_range, voxel_size), got {grid!r}") from None
    if len(pcr) != 6 or len(vs) != 3 or not all(math.isfinite(v) for v in pcr + vs):
        raise ValueError(f"{prefix}`grid` must hold a point_cloud_range of 6 finite values and a voxel_size of 1 or 3, "
                         f"got {grid!r}")
    spec = GridSpec(pcr, vs)  # type: ignore[arg-type]
    try:
        spec.shape
    except ValueError as e:
        raise ValueError(f"{prefix}bad `grid`: {e}") from None
    return spec


# ----------------------------------------------------------------------------------------- covariance
def quaternion_to_rotation(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3) rotation matrices (differentiable)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, -1).reshape(q.shape[:-1] + (3, 3))


def gaussian_covariance(scales: torch.Tensor, rotations: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Σ = R S² Rᵀ and Σ⁻¹ = R S⁻² Rᵀ, (..., 3, 3) each, from scales (..., 3) > 0 and (w, x, y, z) quaternions
    (..., 4) (normalised here). Closed form: no inversion, no host synchronisation; differentiable."""
    r = quaternion_to_rotation(rotations)
    cov = (r * scales.square().unsqueeze(-2)) @ r.transpose(-1, -2)
    prec = (r * scales.square().reciprocal().unsqueeze(-2)) @ r.transpose(-1, -2)
    return cov, prec


def kernel_params(scales: torch.Tensor, rotations: torch.Tensor, opacities: torch.Tensor, bev: bool, prob: bool
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(P6 (G, 6) precision entries (p00, p11, p22, p01, p12, p02), ω (G,)) of the splatting kernel.

    3D: P = Σ⁻¹ = R S⁻² Rᵀ. BEV: P = (Σ_xy)⁻¹, the inverse of the xy block of Σ (the z marginal), by the 2x2
    closed form; its z entries are 0. ω = opacity ("sum") or opacity · (2π)^(-n/2) · |P|^(1/2) ("prob",
    n = 3 or 2: the Gaussian's density normaliser, |Σ⁻¹|^(1/2) = 1 / (s0 s1 s2) in 3D).
    """
    if not bev:
        _, prec = gaussian_covariance(scales, rotations)
        p6 = torch.stack([prec[:, 0, 0], prec[:, 1, 1], prec[:, 2, 2], prec[:, 0, 1], prec[:, 1, 2], prec[:, 0, 2]], 1)
        sqrt_det = scales.prod(-1).reciprocal()
        norm = (2 * math.pi) ** -1.5
    else:
        cov, _ = gaussian_covariance(scales, rotations)
        a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
        det = a * c - b * b
        zero = torch.zeros_like(a)
        p6 = torch.stack([c / det, a / det, zero, -b / det, zero, zero], 1)
        sqrt_det = det.rsqrt()
        norm = (2 * math.pi) ** -1.0
    omega = opacities * sqrt_det * norm if prob else opacities
    return p6, omega


# ------------------------------------------------------------------------------------------ truncation
@dataclass
class SplatPlan:
    """Where each Gaussian may write (all int64, axis order x, y, z; detached).

    ``centre`` = floor((μ - min) / v) per axis, ``radius`` = ceil(k · max(scale) / v_axis) (BEV: z centre and
    radius 0, one z level), ``lo``/``hi`` the cube [centre - radius, centre + radius] clipped to the grid,
    ``active`` = the clipped cube is not empty. ``batch`` = sample of each Gaussian.
    """

    grid: GridSpec
    bev: bool
    batch_size: int
    nx: int
    ny: int
    nz: int
    centre: torch.Tensor
    radius: torch.Tensor
    batch: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    active: torch.Tensor

    @property
    def num_voxels(self) -> int:
        """Voxels of one sample (nz · ny · nx; nz = 1 for BEV)."""
        return self.nz * self.ny * self.nx

    @property
    def origin(self) -> Tuple[float, float, float]:
        return tuple(self.grid.point_cloud_range[:3])  # type: ignore[return-value]

    @property
    def voxel(self) -> Tuple[float, float, float]:
        return tuple(self.grid.voxel_size)  # type: ignore[return-value]

    def pair_counts(self) -> torch.Tensor:
        """(G,) voxels each Gaussian touches (its clipped cube; 0 when inactive)."""
        return torch.where(self.active, (self.hi - self.lo + 1).prod(-1), torch.zeros_like(self.active, dtype=torch.int64))

    def cube_sizes(self) -> torch.Tensor:
        """(G,) voxels of each Gaussian's unclipped cube, Π (2 r + 1)."""
        return (2 * self.radius + 1).prod(-1)


def make_plan(means: torch.Tensor, scales: torch.Tensor, grid: GridSpec, bev: bool, k: float,
              batch: torch.Tensor, batch_size: int) -> SplatPlan:
    """The truncation of the definition (docs/ops.md): computed in float64 from detached means and scales."""
    nz, ny, nx = grid.shape
    if bev:
        nz = 1
    dev = means.device
    lo_w = torch.tensor(grid.point_cloud_range[:3], dtype=torch.float64, device=dev)
    vox = torch.tensor(grid.voxel_size, dtype=torch.float64, device=dev)
    m = means.detach().to(torch.float64)
    centre = torch.floor((m - lo_w) / vox).to(torch.int64)
    smax = scales.detach().to(torch.float64).amax(-1, keepdim=True)
    radius = torch.ceil(float(k) * smax / vox).to(torch.int64)
    if bev:
        centre[:, 2] = 0
        radius[:, 2] = 0
    size = torch.tensor([nx, ny, nz], dtype=torch.int64, device=dev)
    lo = torch.maximum(centre - radius, torch.zeros_like(centre))
    hi = torch.minimum(centre + radius, size - 1)
    active = (lo <= hi).all(-1)
    return SplatPlan(grid=grid, bev=bev, batch_size=batch_size, nx=nx, ny=ny, nz=nz, centre=centre, radius=radius,
                     batch=batch, lo=lo, hi=hi, active=active)


def pair_bytes(channels: int, element_size: int) -> int:
    """Estimated bytes one (voxel, Gaussian) pair costs the reference at its peak (backward recomputation:
    voxel indices, offsets, distances, α, the gathered features, their products and gradients)."""
    return 64 + (3 * channels + 12) * element_size


#: voxels of a Triton block, (TX, TY, TZ): 3D grids and BEV grids
TILE_3D = (4, 4, 4)
TILE_BEV = (8, 8, 1)
#: estimated bytes per (block, Gaussian) pair while the Triton path bins pairs (keys, ids, sort buffers)
BLOCK_PAIR_BYTES = 64


def block_pair_counts(plan: SplatPlan) -> torch.Tensor:
    """(G,) voxel blocks (Triton tiles) each Gaussian's clipped cube overlaps (0 when inactive)."""
    tile = torch.tensor(TILE_BEV if plan.bev else TILE_3D, device=plan.lo.device)
    cnt = (plan.hi // tile - plan.lo // tile + 1).prod(-1)
    return torch.where(plan.active, cnt, torch.zeros_like(cnt))


def check_budget(plan: SplatPlan, units: torch.Tensor, unit_bytes: int, budget: int, scales: torch.Tensor,
                 prefix: str) -> None:
    """ValueError naming the largest Gaussian whose own pairs (``units`` (G,) pairs of ``unit_bytes`` each: the
    reference's Π (2r+1) voxel pairs or the Triton path's block pairs) exceed ``budget`` bytes."""
    if budget <= 0:
        raise ValueError(f"{prefix}`memory_budget_bytes` must be > 0, got {budget}")
    if not plan.active.numel():
        return
    need = torch.where(plan.active, units, torch.zeros_like(units)) * unit_bytes
    worst = int(need.argmax())
    if int(need[worst]) > budget:
        n_bad = int((need > budget).sum())
        s = [round(float(v), 4) for v in scales[worst].detach().cpu()]
        r = plan.radius[worst].tolist()
        raise ValueError(
            f"{prefix}Gaussian {worst} (scale {s}, cube radius {r} voxels: {int(units[worst]):,} pairs of "
            f"~{unit_bytes} bytes) alone exceeds memory_budget_bytes={budget:,}"
            + (f" ({n_bad} Gaussians do)" if n_bad > 1 else "")
            + "; raise the budget, lower k or bound the scales")
