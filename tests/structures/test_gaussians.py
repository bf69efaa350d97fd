"""Gaussians: validation, closed-form Σ / Σ⁻¹, transforms consistent with Boxes3D, batching, ellipsoid export."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from perception3d.ops.gaussian_splat import gaussian_splat
from perception3d.structures import Boxes3D, Gaussians
from perception3d.structures.gaussians import matrix_to_quaternion, quaternion_multiply, unit_sphere


def make(g=6, c=2, seed=0, dtype=torch.float64, offsets=None):
    gen = torch.Generator().manual_seed(seed)
    return Gaussians(torch.randn(g, 3, generator=gen, dtype=dtype) * 3,
                     0.2 + torch.rand(g, 3, generator=gen, dtype=dtype),
                     torch.randn(g, 4, generator=gen, dtype=dtype),
                     torch.rand(g, generator=gen, dtype=dtype),
                     torch.randn(g, c, generator=gen, dtype=dtype), offsets=offsets)


def yaw_quat(yaw):
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def from_boxes(boxes: Boxes3D) -> Gaussians:
    """One Gaussian per box: mean at the centre, scales (l, w, h) / 2, rotated by the yaw (l is the longest side)."""
    t = boxes.tensor.double()
    quats = torch.tensor([yaw_quat(float(y)) for y in t[:, 6]], dtype=torch.float64)
    return Gaussians(t[:, :3].clone(), t[:, 3:6] / 2, quats)


def principal_axis(g: Gaussians) -> torch.Tensor:
    """(G, 3) unit eigenvector of Σ with the largest eigenvalue."""
    vals, vecs = torch.linalg.eigh(g.covariance())
    return vecs[:, :, -1]


def assert_aligned(g: Gaussians, boxes: Boxes3D) -> None:
    """Means on the box centres, the principal axis along the heading (up to sign), the second along w."""
    t = boxes.tensor.double()
    torch.testing.assert_close(g.means, t[:, :3], rtol=0, atol=1e-9)
    heading = torch.stack([torch.cos(t[:, 6]), torch.sin(t[:, 6]), torch.zeros(len(t), dtype=torch.float64)], 1)
    cos = (principal_axis(g) * heading).sum(1).abs()
    torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=1e-6)
    # and Σ itself is the box's: R_yaw diag((l/2)², (w/2)², (h/2)²) R_yawᵀ
    want = from_boxes(boxes).covariance()
    torch.testing.assert_close(g.covariance(), want, rtol=0, atol=1e-5)


BOXES = [[1.0, 2.0, 0.5, 4.0, 1.8, 1.5, 0.3], [-5.0, 3.0, 1.0, 2.5, 0.7, 1.7, -2.0], [0.0, -8.0, 0.0, 6.0, 2.5, 3.0, 2.9]]


# ------------------------------------------------------------------------------------------ validation
def test_validation_errors_name_the_field():
    g = make()
    m, s, q = g.means, g.scales, g.rotations
    with pytest.raises(ValueError, match=r"Gaussians: `scales` must have shape \(6, 3\) \(G = 6 from `means`\)"):
        Gaussians(m, s[:4], q)
    with pytest.raises(ValueError, match=r"`means` must have shape \(G, 3\), got \(6, 2\)"):
        Gaussians(m[:, :2], s, q)
    with pytest.raises(ValueError, match=r"`scales` must be > 0, row 2"):
        Gaussians(m, torch.cat([s[:2], -s[2:3], s[3:]]), q)
    with pytest.raises(ValueError, match=r"`rotations` must be non-zero .* row 0 is zero"):
        Gaussians(m, s, torch.cat([torch.zeros(1, 4, dtype=q.dtype), q[1:]]))
    with pytest.raises(ValueError, match=r"`opacities` must be in \[0, 1\], row 1 is 1.5"):
        Gaussians(m, s, q, torch.tensor([0.5, 1.5, 0, 0, 0, 0], dtype=m.dtype))
    with pytest.raises(ValueError, match=r"`means` must be finite, row 3"):
        Gaussians(torch.cat([m[:3], torch.full((1, 3), float("inf"), dtype=m.dtype), m[4:]]), s, q)
    with pytest.raises(ValueError, match="`offsets` must start at 0, end at G = 6"):
        Gaussians(m, s, q, offsets=torch.tensor([0, 4, 5]))
    with pytest.raises(TypeError, match="`scales` is torch.float32 .* must share dtype and device"):
        Gaussians(m, s.float(), q)
    with pytest.raises(TypeError, match="`rotations` must be a torch.Tensor"):
        Gaussians(m, s, q.tolist())


def test_defaults_and_quaternion_normalisation():
    g = make(c=0)
    assert g.features.shape == (6, 0) and g.channels == 0
    raw = torch.tensor([[2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    h = Gaussians(torch.zeros(2, 3), torch.ones(2, 3), raw)
    torch.testing.assert_close(h.rotations, torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]]))
    torch.testing.assert_close(h.opacities, torch.ones(2))
    torch.testing.assert_close(h.rotations.norm(dim=1), torch.ones(2))


# ------------------------------------------------------------------------------------------ covariance
def test_covariance_and_precision_identities():
    g = make(20)
    cov, prec, r = g.covariance(), g.precision(), g.rotation_matrices()
    torch.testing.assert_close(cov @ prec, torch.eye(3, dtype=torch.float64).expand(20, 3, 3), rtol=0, atol=1e-10)
    torch.testing.assert_close(cov, r @ torch.diag_embed(g.scales ** 2) @ r.transpose(1, 2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(prec, r @ torch.diag_embed(g.scales ** -2) @ r.transpose(1, 2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r.transpose(1, 2) @ r, torch.eye(3, dtype=torch.float64).expand(20, 3, 3),
                               rtol=0, atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(20, dtype=torch.float64))
    # yaw 90°: the Gaussian's x axis (scale 3) lies along the frame's y
    h = Gaussians(torch.zeros(1, 3), torch.tensor([[3.0, 1.0, 0.5]]), torch.tensor([yaw_quat(math.pi / 2)]))
    torch.testing.assert_close(h.covariance()[0], torch.diag(torch.tensor([1.0, 9.0, 0.25])), rtol=0, atol=1e-5)


def test_covariance_is_differentiable():
    g = make(3)
    s, q = g.scales.clone().requires_grad_(), g.rotations.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: Gaussians(g.means, a, b, validate=False).precision(), (s, q))


# ------------------------------------------------------------------------------------------ transforms
def test_rotate_and_translate_follow_boxes():
    boxes = Boxes3D(torch.tensor(BOXES, dtype=torch.float64))
    g = from_boxes(boxes)
    assert_aligned(g, boxes)
    for angle in (0.7, -2.5, math.pi):
        b = boxes.clone()
        b.rotate(angle)
        assert_aligned(g.rotate(angle), b)
    b = boxes.clone()
    b.rotate(1.1)
    b.translate([1.0, -2.0, 0.3])
    assert_aligned(g.rotate(1.1).translate([1.0, -2.0, 0.3]), b)
    # a general (tilted) Gaussian: Σ -> Rz Σ Rzᵀ, means as Boxes3D.rotate moves points
    h = make(8)
    c, s = math.cos(0.9), math.sin(0.9)
    rz = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    hr = h.rotate(0.9)
    torch.testing.assert_close(hr.covariance(), rz @ h.covariance() @ rz.T, rtol=0, atol=1e-10)
    torch.testing.assert_close(hr.means, Boxes3D(torch.zeros(0, 7)).rotate(0.9, points=h.means.clone()))


@pytest.mark.parametrize("axis", ["horizontal", "vertical"])
def test_flip_follows_boxes_and_mirrors_sigma(axis):
    boxes = Boxes3D(torch.tensor(BOXES, dtype=torch.float64))
    g = from_boxes(boxes)
    b = boxes.clone()
    b.flip(axis)
    flipped = g.flip(axis)
    assert_aligned(flipped, b)
    # a general (not box-like: tilted) Gaussian: Σ -> F Σ F with the same mirror F as the points
    h = make(8)
    f = torch.diag(torch.tensor([1.0, -1.0, 1.0] if axis == "horizontal" else [-1.0, 1.0, 1.0], dtype=torch.float64))
    hf = h.flip(axis)
    torch.testing.assert_close(hf.covariance(), f @ h.covariance() @ f, rtol=0, atol=1e-10)
    torch.testing.assert_close(hf.means, h.means @ f, rtol=0, atol=0)
    pts = Boxes3D(torch.zeros(0, 7)).flip(axis, points=h.means.clone())
    torch.testing.assert_close(hf.means, pts)  # the same axis as Boxes3D.flip moves points
    torch.testing.assert_close(hf.flip(axis).covariance(), h.covariance(), rtol=0, atol=1e-10)
    torch.testing.assert_close(hf.features, h.features)


def test_transform_general_rigid_and_reflection():
    h = make(8)
    # a rotation about a tilted axis + translation: Σ -> M Σ Mᵀ, μ -> M μ + t
    ax = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    ang = 1.3
    k = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    rot = np.eye(3) + math.sin(ang) * k + (1 - math.cos(ang)) * k @ k
    for m3 in (rot, rot @ np.diag([1.0, -1.0, 1.0])):  # proper, then improper (a reflection)
        mat = np.eye(4)
        mat[:3, :3], mat[:3, 3] = m3, [1.0, 2.0, -3.0]
        out = h.transform(mat)
        mt = torch.from_numpy(m3)
        torch.testing.assert_close(out.means, h.means @ mt.T + torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64))
        torch.testing.assert_close(out.covariance(), mt @ h.covariance() @ mt.T, rtol=0, atol=1e-10)
        assert torch.allclose(torch.linalg.det(out.rotation_matrices()), torch.ones(8, dtype=torch.float64))
    # a yaw matrix matches Boxes3D.rotate + translate
    boxes = Boxes3D(torch.tensor(BOXES, dtype=torch.float64))
    c, s = math.cos(0.4), math.sin(0.4)
    mat = np.array([[c, -s, 0, 5.0], [s, c, 0, -1.0], [0, 0, 1, 0.5], [0, 0, 0, 1]])
    b = boxes.clone()
    b.rotate(0.4)
    b.translate([5.0, -1.0, 0.5])
    assert_aligned(from_boxes(boxes).transform(torch.from_numpy(mat)), b)
    with pytest.raises(ValueError, match="orthonormal"):
        h.transform(np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"last row .* must be \(0, 0, 0, 1\)"):
        h.transform(np.vstack([np.eye(4)[:3], [1.0, 0, 0, 1]]))
    with pytest.raises(ValueError, match="4x4"):
        h.transform(np.eye(3))


def test_quaternion_helpers():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(5, 4, generator=gen, dtype=torch.float64), torch.randn(5, 4, generator=gen, dtype=torch.float64)
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    ra = Gaussians(torch.zeros(5, 3, dtype=torch.float64), torch.ones(5, 3, dtype=torch.float64), a).rotation_matrices()
    rb = Gaussians(torch.zeros(5, 3, dtype=torch.float64), torch.ones(5, 3, dtype=torch.float64), b).rotation_matrices()
    rab = Gaussians(torch.zeros(5, 3, dtype=torch.float64), torch.ones(5, 3, dtype=torch.float64),
                    quaternion_multiply(a, b)).rotation_matrices()
    torch.testing.assert_close(rab, ra @ rb)
    for i in range(5):  # matrix -> quaternion -> matrix, every pivot branch (w, x, y, z large)
        q = matrix_to_quaternion(ra[i].numpy())
        assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
        assert np.allclose(abs(np.dot(q, a[i].numpy())), 1.0)
    for q in ([0.0, 1.0, 0, 0], [0.0, 0, 1.0, 0], [0.0, 0, 0, 1.0]):  # 180° turns: the x, y, z pivots
        r = Gaussians(torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([q])).rotation_matrices()[0].double().numpy()
        assert np.allclose(np.abs(matrix_to_quaternion(r)), np.abs(q))


# ------------------------------------------------------------------------------------------ batching
def test_batching_by_offsets():
    g = make(7, offsets=torch.tensor([0, 3, 3, 7]))
    assert g.batch_size == 3 and len(g) == 7
    assert g.batch_idx.tolist() == [0, 0, 0, 2, 2, 2, 2]
    assert len(g.sample(1)) == 0 and len(g.sample(-1)) == 4
    torch.testing.assert_close(g.sample(2).means, g.means[3:])
    back = Gaussians.cat([g.sample(0), g.sample(1), g.sample(2)])
    assert back.offsets.tolist() == [0, 3, 3, 7]
    torch.testing.assert_close(back.features, g.features)
    with pytest.raises(IndexError):
        g.sample(3)
    # splat passes the batch on: one grid per sample
    grid = ((-4.0, -4.0, -2.0, 4.0, 4.0, 2.0), 0.5)
    out = g.splat(grid)
    assert out.shape == (3, 8, 16, 16, 2)
    torch.testing.assert_close(out, gaussian_splat(g.means, g.scales, g.rotations, g.opacities, g.features, grid,
                                                   offsets=g.offsets))
    assert float(out[1].abs().sum()) == 0.0 and float(out[0].abs().sum()) > 0


# ------------------------------------------------------------------------------------------ export
def test_unit_sphere_is_closed_and_outward():
    v, t = unit_sphere(6)
    assert v.shape == (2 + 5 * 12, 3) and t.shape == (2 * 12 + 2 * 12 * 4, 3)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    normals = np.cross(b - a, c - a)
    assert (np.einsum("ij,ij->i", normals, (a + b + c) / 3) > 0).all()  # counter-clockwise from outside
    edges = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # closed: every edge shared by exactly two triangles


def test_ellipsoid_mesh_lies_on_the_k_sigma_surface():
    g = make(5)
    mesh = g.ellipsoid_mesh(k=2.0, resolution=5, colors=np.eye(3)[[0, 1, 2, 0, 1]], min_opacity=0.0)
    v, tri, idx = mesh["vertices"], mesh["triangles"], mesh["gaussian_index"]
    per = len(unit_sphere(5)[0])
    assert v.shape == (5 * per, 3) and mesh["vertex_colors"].shape == v.shape and tri.dtype == np.int32
    prec, mu = g.precision().numpy(), g.means.numpy()
    d = v - mu[idx]
    np.testing.assert_allclose(np.einsum("ni,nij,nj->n", d, prec[idx], d), 4.0, rtol=1e-9)  # k² = 4
    assert (idx[tri] == idx[tri[:, :1]]).all()  # a triangle never joins two Gaussians
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    assert (np.einsum("ij,ij->i", np.cross(b - a, c - a), (a + b + c) / 3 - mu[idx[tri[:, 0]]]) > 0).all()
    np.testing.assert_allclose(mesh["vertex_colors"][idx == 3], np.tile([1.0, 0, 0], ((idx == 3).sum(), 1)))
    keep = g.opacities.numpy() >= 0.5
    sub = g.ellipsoid_mesh(min_opacity=0.5, resolution=5)
    assert sorted(set(sub["gaussian_index"].tolist())) == np.nonzero(keep)[0].tolist()
    with pytest.raises(ValueError, match=r"`colors` must have shape \(5, 3\)"):
        g.ellipsoid_mesh(colors=np.zeros((2, 3)))


def test_to_open3d_ellipsoids():
    o3d = pytest.importorskip("open3d")
    g = make(3)
    mesh = g.to_open3d_ellipsoids(k=1.5, resolution=4)
    assert isinstance(mesh, o3d.geometry.TriangleMesh)
    ref = g.ellipsoid_mesh(k=1.5, resolution=4)
    np.testing.assert_allclose(np.asarray(mesh.vertices), ref["vertices"])
    np.testing.assert_array_equal(np.asarray(mesh.triangles), ref["triangles"])
    assert mesh.has_vertex_normals() and mesh.has_vertex_colors()


def test_structures_import_stays_lazy():
    code = ("import sys, perception3d.structures; "
            "print([m for m in ('open3d', 'triton') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
