"""ReconstructionResult files (.binvox, .ply / .obj meshes in the object frame) and the voxel pictures."""
import numpy as np
import pytest

from perception3d.apis.recon_results import ReconstructionResult, grid_mesh, write_mesh
from perception3d.datasets.io.binvox import read_binvox
from perception3d.visualization.recon import object_camera, plot_reconstruction, voxel_faces


def _probs(d=32):
    p = np.zeros((d, d, d), np.float32)
    p[4:12, 6:20, 10:14] = 0.8  # an asymmetric block: x 8, y 14, z 4 voxels
    p[4:12, 6:20, 14] = 0.25  # below the 0.3 threshold
    return p


def test_binvox_and_threshold(tmp_path, leftovers):
    res = ReconstructionResult(_probs(), threshold=0.3)
    assert res.num_occupied == 8 * 14 * 4
    path = res.save_binvox(tmp_path / "obj.binvox")
    grid, header = read_binvox(path)
    assert np.array_equal(grid, res.voxels)
    assert header.translate == (-0.5, -0.5, -0.5) and header.scale == 1.0 and header.dims == (32, 32, 32)
    assert ReconstructionResult(_probs(), threshold=0.2).num_occupied == 8 * 14 * 5
    assert leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="threshold"):
        ReconstructionResult(_probs(), threshold=1.5)
    with pytest.raises(ValueError, match="D, D, D"):
        ReconstructionResult(np.zeros((4, 4, 5)))


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_mesh_files_read_back_in_the_object_frame(tmp_path, fmt):
    import open3d as o3d

    res = ReconstructionResult(_probs())
    verts, faces = res.mesh()
    # flat faces of the level-0.5 surface lie on the voxel boundaries: voxel idx spans [idx, idx+1] / 32 - 0.5
    lo = np.array([4, 6, 10]) / 32 - 0.5
    hi = np.array([12, 20, 14]) / 32 - 0.5
    assert np.allclose(verts.min(0), lo) and np.allclose(verts.max(0), hi)
    path = res.save_mesh(tmp_path / f"obj.{fmt}")
    mesh = o3d.io.read_triangle_mesh(path)
    assert len(mesh.vertices) == len(verts) and len(mesh.triangles) == len(faces)
    assert np.allclose(np.asarray(mesh.vertices), verts, atol=1e-5)
    assert np.array_equal(np.asarray(mesh.triangles), faces)
    assert mesh.is_watertight()
    # wound outwards: positive signed volume = the box volume (8 x 14 x 4 voxels, minus the chamfered edges)
    tri = verts[faces]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 0.9 * (8 * 14 * 4) / 32 ** 3 < vol < (8 * 14 * 4) / 32 ** 3


def test_mesh_errors_and_empty(tmp_path):
    with pytest.raises(ValueError, match="unsupported mesh format"):
        write_mesh(tmp_path / "m.stl", np.zeros((3, 3)), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="face indices"):
        write_mesh(tmp_path / "m.ply", np.zeros((3, 3)), np.array([[0, 1, 3]]))
    v, f = grid_mesh(np.zeros((8, 8, 8), bool))
    assert v.shape == (0, 3) and f.shape == (0, 3)
    path = write_mesh(tmp_path / "empty.ply", v, f)
    assert b"element vertex 0\n" in open(path, "rb").read()


def test_voxel_faces_exposed_and_outward():
    g = np.zeros((4, 4, 4), bool)
    g[1, 1, 1] = True
    v, t, owner = voxel_faces(g)
    assert len(t) == 12 and len(owner) == 6
    g[2, 1, 1] = True  # two voxels share a face: 10 exposed faces
    v, t, owner = voxel_faces(g)
    assert len(t) == 20
    centres = (owner[np.arange(len(t)) // 2] + 0.5) / 4 - 0.5
    tri = v[t]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (np.einsum("ij,ij->i", normal, tri.mean(1) - centres) > 0).all()


def test_plot_reconstruction(tmp_path):
    from PIL import Image

    gt = _probs() > 0.5
    views = [np.full((64, 64, 3), 0.9, np.float32), np.zeros((3, 64, 64), np.float32)]
    out, backend = plot_reconstruction(tmp_path / "r.png", views, _probs(), gt, 0.3, title="box",
                                       backend="software", size=120)
    assert backend == "software"
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[1] > 3 * img.shape[0]  # 4 panels side by side
    with pytest.raises(ValueError, match="nothing to draw"):
        plot_reconstruction(tmp_path / "n.png")


def test_object_camera_frames_the_unit_cube():
    cam = object_camera(200, 200)
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    uv, depth = cam.project(corners)
    assert (depth > 0).all() and (uv > 0).all() and (uv < 200).all()
    # +y (up) projects upwards in the image
    (u0, v0), (u1, v1) = cam.project(np.array([[0, 0, 0], [0, 0.3, 0]]))[0]
    assert v1 < v0
