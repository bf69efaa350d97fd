"""Visualisation: Open3D scenes (window, headless PNG, PLY), matplotlib BEV plots, camera-image overlays.

Nothing heavy is imported here: Open3D, matplotlib, PIL and OpenCV are imported inside the functions.
"""
from .bev import plot_bev
from .camera import Camera, bev_camera, chase_camera, default_camera
from .image_overlay import draw_boxes_on_image
from .open3d_scene import RenderResult, build_scene, export_ply, render_frame, show_frame

__all__ = ["Camera", "RenderResult", "bev_camera", "build_scene", "chase_camera", "default_camera",
           "draw_boxes_on_image", "export_ply", "plot_bev", "render_frame", "show_frame"]
