"""Open3D scenes of a lidar frame: points, GT and predicted boxes, camera frustums, Gaussians, voxels.

``build_scene`` -> Open3D geometries; ``render_frame`` -> a PNG without a display; ``show_frame`` -> an
interactive window; ``export_ply`` -> the scene as one .ply file. Open3D is imported lazily inside the
functions. Headless rendering tries, in order: Open3D's legacy ``Visualizer(visible=False)`` (EGL when
there is no display), Open3D's Filament ``OffscreenRenderer``, then the NumPy rasteriser of
:mod:`perception3d.visualization.raster`; the result says which one drew the picture.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .camera import Camera, default_camera
from .image_overlay import annotate_image
from .ply import write_scene_ply
from .scene import SceneData, make_scene

logger = logging.getLogger(__name__)
BACKGROUND = (0.06, 0.06, 0.08)
BACKENDS = ("open3d", "open3d-offscreen", "software")


@dataclass(frozen=True)
class RenderResult:
    """A rendered picture: ``path`` (PNG), the ``backend`` that drew it (one of :data:`BACKENDS`) and the
    ``camera`` used (project with ``camera.lidar2img``). Usable as a path (``os.fspath``, ``Path(result)``)."""

    path: Path
    backend: str
    camera: Camera

    def __fspath__(self) -> str:
        return str(self.path)


def build_scene(points, gt_boxes=None, gt_labels=None, pred_boxes=None, pred_labels=None, pred_scores=None,
                score_thr: float = 0.3, color_by: str = "height", cameras=None, gaussians=None, voxels=None,
                class_names: Sequence[str] | None = None, velocity_seconds: float = 1.0) -> list:
    """Open3D geometries of one frame (all in the lidar frame, metres).

    Args:
        points: (N, >=3) x, y, z[, intensity, ...]; coloured by ``color_by`` = 'height' | 'intensity' | 'white'.
        gt_boxes, pred_boxes: (M, >=7) x, y, z (gravity centre), l, w, h, yaw (or Boxes3D). GT boxes are light
            grey, predictions take their class colour; each box has a heading line to its front face.
        gt_labels, pred_labels: class names, or indices into ``class_names``.
        pred_scores: (M,) predictions below ``score_thr`` are left out.
        cameras: list of dicts with ``lidar2img`` (4, 4), ``width``, ``height`` [, ``depth`` m] -> frustums.
        gaussians: dict(means (G, 3), scales (G, 3), rotations (G, 4) unit w, x, y, z [, colors (G, 3), sigma])
            -> ellipsoids (the ``sigma`` level set of N(mean, R S^2 R^T)).
        voxels: dict(coords (M, 4) int (b, z, y, x), voxel_size (3,), point_cloud_range (6,)[, batch_index,
            color]) -> cubes.
        velocity_seconds: boxes with velocity ((M, 9): ..., vx, vy) moving >= 0.5 m/s get an arrow to where they
            will be after this many seconds, in the box's colour (0: no arrows).
    Returns: [PointCloud, LineSet, TriangleMesh] (the ones that are not empty).
    """
    return _to_open3d(make_scene(points, gt_boxes, gt_labels, pred_boxes, pred_labels, pred_scores, score_thr,
                                 color_by, cameras, gaussians, voxels, class_names, velocity_seconds))


def _to_open3d(sc: SceneData) -> list:
    import open3d as o3d

    v3 = o3d.utility.Vector3dVector
    geoms = []
    if len(sc.points):
        pc = o3d.geometry.PointCloud(v3(sc.points))
        pc.colors = v3(sc.point_colors)
        geoms.append(pc)
    if len(sc.segments):
        ls = o3d.geometry.LineSet(v3(sc.segments.reshape(-1, 3)),
                                  o3d.utility.Vector2iVector(np.arange(2 * len(sc.segments)).reshape(-1, 2)))
        ls.colors = v3(sc.segment_colors)
        geoms.append(ls)
    if len(sc.triangles):
        mesh = o3d.geometry.TriangleMesh(v3(sc.vertices), o3d.utility.Vector3iVector(sc.triangles.astype(np.int32)))
        mesh.vertex_colors = v3(sc.vertex_colors)
        mesh.compute_vertex_normals()
        geoms.append(mesh)
    return geoms


def load_triton_before_opengl() -> None:
    """Import triton, when installed, before Open3D opens an OpenGL context (call it right before).

    Without a GPU, OpenGL is Mesa's llvmpipe: ``libEGL_mesa`` loads ``swrast_dri.so`` and the system's
    ``libLLVM-NN.so`` into the process's global symbol scope. triton's ``libtriton.so`` carries its own LLVM and
    exports those symbols: loaded afterwards (e.g. ``torch._dynamo`` importing triton when an optimizer is built),
    its LLVM references bind to the system LLVM and its static initialisers crash (segfault). Loaded first, its
    references are bound to its own LLVM, and Mesa's later ones to the system LLVM."""
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        return
    try:
        import triton  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken triton install: nothing to protect
        logger.debug("triton not loaded before OpenGL (%s: %s)", type(exc).__name__, exc)


def _render_legacy(sc: SceneData, cam: Camera, point_size: float, line_width: float) -> np.ndarray | None:
    import open3d as o3d

    load_triton_before_opengl()
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(visible=False, width=cam.width, height=cam.height):
        return None
    try:
        for g in _to_open3d(sc):
            vis.add_geometry(g)
        opt = vis.get_render_option()
        opt.background_color = np.asarray(BACKGROUND)
        opt.point_size = float(point_size)
        opt.line_width = float(line_width)
        opt.mesh_show_back_face = True
        ctl = vis.get_view_control()
        ctl.set_constant_z_near(0.1)
        ctl.set_constant_z_far(10000.0)
        params = o3d.camera.PinholeCameraParameters()
        k = cam.intrinsic
        params.intrinsic = o3d.camera.PinholeCameraIntrinsic(cam.width, cam.height, k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        params.extrinsic = cam.extrinsic
        if not ctl.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True):
            raise RuntimeError("Open3D rejected the camera parameters")
        got = ctl.convert_to_pinhole_camera_parameters()
        if not (np.allclose(got.extrinsic, cam.extrinsic, atol=1e-4) and
                np.allclose(got.intrinsic.intrinsic_matrix, cam.intrinsic, atol=1e-3)):
            raise RuntimeError("Open3D changed the camera; the picture would not match the exposed camera")
        vis.poll_events()
        vis.update_renderer()
        img = np.asarray(vis.capture_screen_float_buffer(do_render=True))
    finally:
        vis.destroy_window()
    if img.shape[:2] != (cam.height, cam.width) or img.std() == 0:
        return None
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _render_filament(sc: SceneData, cam: Camera, point_size: float, line_width: float) -> np.ndarray | None:
    import open3d as o3d

    load_triton_before_opengl()
    rnd = o3d.visualization.rendering.OffscreenRenderer(cam.width, cam.height)
    rnd.scene.set_background([*BACKGROUND, 1.0])
    for i, g in enumerate(_to_open3d(sc)):
        mat = o3d.visualization.rendering.MaterialRecord()
        if isinstance(g, o3d.geometry.PointCloud):
            mat.shader, mat.point_size = "defaultUnlit", float(point_size)
        elif isinstance(g, o3d.geometry.LineSet):
            mat.shader, mat.line_width = "unlitLine", float(line_width)
        else:
            mat.shader = "defaultLit"
        rnd.scene.add_geometry(f"g{i}", g, mat)
    rnd.setup_camera(cam.intrinsic, cam.extrinsic, cam.width, cam.height)
    return np.asarray(rnd.render_to_image())[..., :3].copy()


def render_image(sc: SceneData, cam: Camera, backend: str = "auto", point_size: float = 2.0,
                 line_width: float = 2.0) -> tuple[np.ndarray, str]:
    """Render ``sc`` through ``cam`` -> ((H, W, 3) uint8 RGB, backend name). ``backend`` = 'auto' tries
    :data:`BACKENDS` in order; naming one forces it (errors propagate)."""
    from .raster import rasterize

    order = BACKENDS if backend == "auto" else (backend,)
    if backend not in BACKENDS + ("auto",):
        raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    for name in order:
        if name == "software":
            return rasterize(sc, cam, BACKGROUND, round(point_size), round(line_width)), name
        try:
            img = (_render_legacy if name == "open3d" else _render_filament)(sc, cam, point_size, line_width)
        except Exception as exc:  # noqa: BLE001 - any failure of an optional backend means: try the next
            if backend != "auto":
                raise
            logger.info("render backend %s failed (%s: %s); trying the next", name, type(exc).__name__, exc)
            continue
        if img is not None:
            return img, name
        if backend != "auto":
            raise RuntimeError(f"render backend {name} produced no image")
        logger.info("render backend %s produced no image; trying the next", name)
    raise AssertionError("unreachable")


def write_image(img: np.ndarray, out: str | Path, quality: int = 90) -> Path:
    """Write (H, W, 3) uint8 RGB to ``out`` (.png or .jpg) atomically."""
    from PIL import Image

    from perception3d.utils.atomic import atomic_open

    out = Path(out)
    fmt = "JPEG" if out.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with atomic_open(out, "wb") as f:
        Image.fromarray(np.ascontiguousarray(img)).save(f, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return out


def render_frame(points, out_png: str | Path, gt_boxes=None, gt_labels=None, pred_boxes=None, pred_labels=None,
                 pred_scores=None, score_thr: float = 0.3, color_by: str = "height", cameras=None, gaussians=None,
                 voxels=None, class_names: Sequence[str] | None = None, view: str = "bev", width: int = 1280,
                 height: int = 960, extent: float | Sequence[float] = 51.2, camera: Camera | None = None,
                 point_size: float = 2.0, line_width: float = 2.0, title: str | None = None,
                 legend: bool = True, backend: str = "auto", forward=None,
                 velocity_seconds: float = 1.0) -> RenderResult:
    """Render one frame headless to ``out_png`` (atomic write) and return a :class:`RenderResult`.

    Scene arguments as :func:`build_scene`. ``view`` = 'bev' (straight down, +x up, covering ``extent``) or
    'chase' (behind and above the ego); ``forward`` (2,) is the lidar-frame direction of travel (default +x;
    :func:`perception3d.visualization.camera.ego_forward` gets it from ``lidar2ego``); ``camera`` overrides. ``title`` and a class legend are
    drawn on top when given/enabled. The backend that drew the image is logged and returned."""
    cam = camera or default_camera(view, extent, width, height, forward)
    sc = make_scene(points, gt_boxes, gt_labels, pred_boxes, pred_labels, pred_scores, score_thr, color_by,
                    cameras, gaussians, voxels, class_names, velocity_seconds)
    img, used = render_image(sc, cam, backend, point_size, line_width)
    img = annotate_image(img, title, sc.legend if legend else {})
    out = write_image(img, out_png)
    logger.info("rendered %s with backend %s", out, used)
    return RenderResult(out, used, cam)


def show_frame(points, gt_boxes=None, gt_labels=None, pred_boxes=None, pred_labels=None, pred_scores=None,
               score_thr: float = 0.3, color_by: str = "height", cameras=None, gaussians=None, voxels=None,
               class_names: Sequence[str] | None = None, window_name: str = "perception3d",
               point_size: float = 2.0, velocity_seconds: float = 1.0) -> None:
    """Open an interactive Open3D window with the scene (blocks until it is closed). Needs a display."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise RuntimeError("show_frame needs a display (DISPLAY/WAYLAND_DISPLAY is not set); use render_frame "
                           "to write a PNG, or export_ply and open the file elsewhere")
    import open3d as o3d

    geoms = build_scene(points, gt_boxes, gt_labels, pred_boxes, pred_labels, pred_scores, score_thr, color_by,
                        cameras, gaussians, voxels, class_names, velocity_seconds)
    geoms.append(o3d.geometry.TriangleMesh.create_coordinate_frame(size=2.0))
    load_triton_before_opengl()
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(window_name=window_name, width=1280, height=960):
        raise RuntimeError("Open3D could not open a window on this display")
    for g in geoms:
        vis.add_geometry(g)
    opt = vis.get_render_option()
    opt.background_color, opt.point_size, opt.line_width = np.asarray(BACKGROUND), point_size, 2.0
    vis.run()
    vis.destroy_window()


def export_ply(path: str | Path, points=None, gt_boxes=None, gt_labels=None, pred_boxes=None, pred_labels=None,
               pred_scores=None, score_thr: float = 0.3, color_by: str = "height", cameras=None, gaussians=None,
               voxels=None, class_names: Sequence[str] | None = None, edge_step: float = 0.05,
               velocity_seconds: float = 1.0) -> Path:
    """Write the scene to one binary .ply (atomic): coloured vertices = points, then box/frustum edges sampled
    every ``edge_step`` metres, then mesh vertices (Gaussians, voxels) with their faces. Returns the path."""
    sc = make_scene(points, gt_boxes, gt_labels, pred_boxes, pred_labels, pred_scores, score_thr, color_by,
                    cameras, gaussians, voxels, class_names, velocity_seconds)
    return write_scene_ply(sc, path, edge_step)
