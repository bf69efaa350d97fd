"""Small utilities shared by the tools (benchmark helpers live in :mod:`perception3d.utils.benchmark`)."""
