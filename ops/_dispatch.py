"""What every op's public function shares: the implementation choice, Triton availability, input checks.

Errors all start with ``"ops.<op>.<function>: "`` (e.g. ``ops.voxelize.dynamic_voxelize: `points` must be
(N, 3+) ...``), so a message names the op's folder, the function and the field. Shape/dtype/device problems
raise ValueError/TypeError before any kernel runs.

Implementations (only ops that have both accept an ``impl`` argument):

- ``"reference"``: the pure-PyTorch path (any device; the test oracle);
- ``"triton"``: the Triton kernels, for CUDA tensors, or CPU tensors when ``TRITON_INTERPRET=1`` (tests);
- ``"auto"``: triton for CUDA tensors when triton imports, else reference (CPU tensors always take the
  reference, also under the interpreter).

Triton is imported only when :func:`triton_available` is called (never by ``import perception3d.ops``).
"""
from __future__ import annotations

import functools
import os
import re
from typing import Optional, Sequence, Tuple, Union

import torch

IMPLS: Tuple[str, ...] = ("auto", "reference", "triton")

DimSpec = Union[int, str, None]
DtypeSpec = Union[str, torch.dtype, Tuple[torch.dtype, ...], None]

_AT_LEAST = re.compile(r"^(\d+)\+$")


def error_prefix(op: str) -> str:
    """``"ops.<op>: "`` with ``op`` = "<folder>.<function>", e.g. "voxelize.dynamic_voxelize"."""
    return f"ops.{op}: "


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when ``import triton`` works (checked once, on first call; imports triton)."""
    try:
        import triton  # noqa: F401
    except Exception:  # a missing or broken install both mean "no Triton path"
        return False
    return True


def triton_interpreting() -> bool:
    """True under ``TRITON_INTERPRET=1`` (Triton kernels run on CPU tensors, for tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def choose_impl(op: str, impl: str, device: torch.device) -> str:
    """Resolve ``impl`` ("auto" | "reference" | "triton") for tensors on ``device`` -> "reference" | "triton".

    Raises ValueError for an unknown ``impl`` or "triton" on CPU tensors without ``TRITON_INTERPRET=1``,
    RuntimeError for "triton" when triton cannot be imported.
    """
    if impl not in IMPLS:
        raise ValueError(f"{error_prefix(op)}`impl` must be one of {', '.join(repr(i) for i in IMPLS)}, got {impl!r}")
    if impl == "reference":
        return "reference"
    if impl == "auto":
        return "triton" if device.type == "cuda" and triton_available() else "reference"
    if not triton_available():
        raise RuntimeError(f"{error_prefix(op)}impl='triton' but triton cannot be imported (install triton, or use "
                           f"impl='auto' / 'reference')")
    if device.type != "cuda" and not triton_interpreting():
        raise ValueError(f"{error_prefix(op)}impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors), "
                         f"got tensors on {device}")
    return "triton"


def _dtype_ok(dtype: torch.dtype, spec: DtypeSpec) -> Tuple[bool, str]:
    if spec is None:
        return True, ""
    if spec == "float":
        return dtype.is_floating_point, "floating point"
    if spec == "int":
        return dtype in (torch.int32, torch.int64), "int32/int64"
    allowed = (spec,) if isinstance(spec, torch.dtype) else tuple(spec)
    return dtype in allowed, "/".join(str(d).replace("torch.", "") for d in allowed)


def _shape_str(shape: Sequence[DimSpec]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def check_tensor(op: str, field: str, t: object, shape: Optional[Sequence[DimSpec]] = None,
                 dtype: DtypeSpec = None) -> torch.Tensor:
    """Check that ``t`` is a tensor with ``shape`` and ``dtype``; returns it.

    ``shape`` entries: an int (that exact size), ``"k+"`` (at least k, e.g. ``"7+"``), or a name / None (any
    size; the name only appears in the message). ``dtype``: "float" (any floating point), "int" (int32 or
    int64), a dtype or a tuple of dtypes. TypeError for a non-tensor or a wrong dtype, ValueError for a wrong
    shape.
    """
    prefix = error_prefix(op)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{prefix}`{field}` must be a torch.Tensor, got {type(t).__name__}")
    if shape is not None:
        ok = t.dim() == len(shape)
        for size, spec in zip(t.shape, shape):
            if isinstance(spec, int) and not isinstance(spec, bool):
                ok = ok and size == spec
            elif isinstance(spec, str) and _AT_LEAST.match(spec):
                ok = ok and size >= int(spec[:-1])
        if not ok:
            raise ValueError(f"{prefix}`{field}` must have shape {_shape_str(shape)}, got {tuple(t.shape)}")
    ok, want = _dtype_ok(t.dtype, dtype)
    if not ok:
        raise TypeError(f"{prefix}`{field}` must be {want}, got {t.dtype}")
    return t


def check_same_dtype_device(op: str, **tensors: torch.Tensor) -> None:
    """All ``tensors`` (keyword = field name, in the order given) share the first one's dtype and device."""
    items = list(tensors.items())
    ref_name, ref = items[0]
    for name, t in items[1:]:
        if t.dtype != ref.dtype or t.device != ref.device:
            raise TypeError(f"{error_prefix(op)}`{name}` is {t.dtype} on {t.device} but `{ref_name}` is {ref.dtype} on "
                            f"{ref.device}; {', '.join(f'`{n}`' for n, _ in items)} must share dtype and device")


def check_same_device(op: str, **tensors: torch.Tensor) -> None:
    """All ``tensors`` (keyword = field name) are on the first one's device."""
    items = list(tensors.items())
    ref_name, ref = items[0]
    for name, t in items[1:]:
        if t.device != ref.device:
            raise ValueError(f"{error_prefix(op)}`{name}` is on {t.device} but `{ref_name}` on {ref.device}")


def check_offsets(op: str, field: str, offsets: object, n: int) -> int:
    """``offsets`` (W + 1,) int32/int64 cumulative row counts: 0 first, ``n`` last, non-decreasing -> W."""
    check_tensor(op, field, offsets, ("W + 1",), "int")
    if offsets.numel() < 1:
        raise ValueError(f"{error_prefix(op)}`{field}` must have at least one entry (0), got an empty tensor")
    first, last = int(offsets[0]), int(offsets[-1])
    if first != 0 or last != n:
        raise ValueError(f"{error_prefix(op)}`{field}` must start at 0 and end at N={n}, got {first} .. {last}")
    if offsets.numel() > 1 and bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"{error_prefix(op)}`{field}` must be non-decreasing")
    return offsets.numel() - 1


def check_window_qkv(op: str, q: object, k: object, v: object, offsets: object) -> int:
    """Window attention inputs: ``q``, ``k`` (N, H, d) and ``v`` (N, H, e) float with one dtype and device,
    ``offsets`` (W + 1,) cumulative row counts over the N tokens (see :func:`check_offsets`) -> W."""
    for field, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(op, field, t, ("N", "H", "d" if field != "v" else "e"), "float")
    if q.shape != k.shape or k.shape[:2] != v.shape[:2]:
        raise ValueError(f"{error_prefix(op)}`q` and `k` must be (N, H, d) and `v` (N, H, e) with the same N, H; got "
                         f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    check_same_dtype_device(op, q=q, k=k, v=v)
    num_windows = check_offsets(op, "window_offsets", offsets, q.shape[0])
    check_same_device(op, q=q, window_offsets=offsets)
    return num_windows


def check_ints(op: str, field: str, values: object, length: int, minimum: int, names: str = "") -> Tuple[int, ...]:
    """A sequence of ``length`` ints, each >= ``minimum`` -> tuple of Python ints. ``names`` describes the
    entries in the message, e.g. "(wx, wy)"."""
    try:
        vals = tuple(int(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        vals = ()
    if len(vals) != length or min(vals) < minimum:
        raise ValueError(f"{error_prefix(op)}`{field}` must be {length} ints {names} >= {minimum}, got {values}")
    return vals
