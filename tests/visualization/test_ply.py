"""PLY export: reads back (Open3D's reader as the oracle) with the expected vertex and face counts."""
from __future__ import annotations

import numpy as np

from perception3d.visualization import export_ply
from perception3d.visualization.ply import sample_segments


def test_ply_round_trip(tmp_path):
    import open3d as o3d

    rng = np.random.default_rng(1)
    pts = rng.uniform(-10, 10, (500, 4))
    boxes = np.array([[1.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.2], [5.0, -3.0, 0.0, 2.0, 1.0, 1.0, -1.0]])
    gauss = dict(means=[[0, 0, 0], [3, 3, 0]], scales=[[1, 0.5, 0.2], [0.3, 0.3, 0.3]],
                 rotations=[[1, 0, 0, 0], [1, 0, 0, 0]])
    vox = dict(coords=np.array([[0, 0, 1, 1], [0, 1, 2, 3]]), voxel_size=[0.5, 0.5, 0.5],
               point_cloud_range=[-5, -5, -2, 5, 5, 2])
    path = export_ply(tmp_path / "sub" / "scene.ply", pts, gt_boxes=boxes, gt_labels=["car", "bus"],
                      pred_boxes=boxes[:1], pred_labels=["car"], pred_scores=[0.9], gaussians=gauss, voxels=vox,
                      edge_step=0.1)
    mesh = o3d.io.read_triangle_mesh(str(path))
    v = np.asarray(mesh.vertices)
    # expected counts from independent arithmetic: 13 segments per box (12 edges + heading line)
    from perception3d.structures.ellipsoids import unit_sphere
    from perception3d.visualization.scene import box_segments

    segs = np.concatenate([box_segments(boxes), box_segments(boxes[:1])]).reshape(-1, 2, 3)
    n_edge = sum(max(int(np.ceil(np.linalg.norm(b - a) / 0.1)) + 1, 2) for a, b in segs)
    sv, st = unit_sphere(8)  # the scene builder's default resolution
    assert len(v) == 500 + n_edge + 2 * len(sv) + 2 * 8
    assert len(mesh.triangles) == 2 * len(st) + 2 * 12
    assert np.allclose(v[:500], pts[:, :3], atol=1e-5)  # float32 positions
    assert mesh.has_vertex_colors()
    tri = np.asarray(mesh.triangles)
    assert tri.min() == 500 + n_edge and tri.max() == len(v) - 1  # faces index the mesh vertices
    pc = o3d.io.read_point_cloud(str(path))
    assert len(pc.points) == len(v)
    assert [p.name for p in path.parent.iterdir()] == ["scene.ply"]  # atomic: no temp file left


def test_sample_segments_spacing():
    seg = np.array([[[0.0, 0, 0], [1.0, 0, 0]]])
    p, c = sample_segments(seg, np.ones((1, 3)), 0.25)
    assert np.allclose(p[:, 0], [0, 0.25, 0.5, 0.75, 1.0]) and c.shape == (5, 3)
