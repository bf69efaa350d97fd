"""ops/_dispatch.py: the implementation choice, Triton availability, the shared input checks and error prefix,
and the contract that only ops with two implementations take ``impl``."""
import importlib
import inspect
import subprocess
import sys

import pytest
import torch

from perception3d.ops import _dispatch
from perception3d.ops._dispatch import check_offsets, check_tensor, choose_impl, triton_available

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
OPS = ("box_iou", "deform_attn", "dsvt", "flat_window", "nms", "scatter", "scatter_attention", "voxelize",
       "window_attention_padded")
TWO_IMPLS = {"deform_attn.ms_deform_attn", "deform_attn.dfa3d", "scatter_attention.scatter_linear_attention"}


@pytest.fixture
def no_triton(monkeypatch):
    """``import triton`` fails (as on an install without it); the cached answer is reset before and after."""
    triton_available.cache_clear()
    monkeypatch.setitem(sys.modules, "triton", None)
    yield
    triton_available.cache_clear()


def test_choose_impl(monkeypatch):
    assert choose_impl("x.f", "reference", CUDA) == "reference"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert choose_impl("x.f", "auto", CPU) == "reference"  # CPU tensors take the reference even when interpreting
    monkeypatch.setattr(_dispatch, "triton_available", lambda: True)
    assert choose_impl("x.f", "auto", CUDA) == "triton"
    assert choose_impl("x.f", "triton", CPU) == "triton"  # the interpreter runs the kernels on CPU tensors
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=r"^ops\.x\.f: impl='triton' needs CUDA tensors \(or TRITON_INTERPRET=1"):
        choose_impl("x.f", "triton", CPU)
    monkeypatch.setattr(_dispatch, "triton_available", lambda: False)
    assert choose_impl("x.f", "auto", CUDA) == "reference"


def test_bad_impl_names_the_op_and_the_allowed_values():
    with pytest.raises(ValueError, match=r"^ops\.x\.f: `impl` must be one of 'auto', 'reference', 'triton', "
                                         r"got 'cuda'"):
        choose_impl("x.f", "cuda", CPU)
    q = torch.randn(4, 1, 2)
    with pytest.raises(ValueError, match=r"^ops\.scatter_attention\.scatter_linear_attention: `impl` must be one of "
                                         r"'auto', 'reference', 'triton', got 'gpu'"):
        from perception3d.ops.scatter_attention import scatter_linear_attention

        scatter_linear_attention(q, q, q, torch.tensor([0, 4]), impl="gpu")


def test_triton_requested_but_unavailable(no_triton, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_available() is False
    with pytest.raises(RuntimeError, match=r"^ops\.x\.f: impl='triton' but triton cannot be imported"):
        choose_impl("x.f", "triton", CPU)
    assert choose_impl("x.f", "auto", CUDA) == "reference"  # auto falls back instead of failing
    from perception3d.ops.scatter_attention import scatter_linear_attention

    q = torch.randn(4, 1, 2)
    with pytest.raises(RuntimeError, match="scatter_linear_attention: impl='triton' but triton cannot be imported"):
        scatter_linear_attention(q, q, q, torch.tensor([0, 4]), impl="triton")


def test_triton_available_is_cached_and_lazy():
    code = ("import sys, perception3d.ops, perception3d.ops._dispatch as d; "
            + "".join(f"import perception3d.ops.{op}; " for op in OPS)
            + "before = 'triton' in sys.modules; d.triton_available(); d.triton_available(); "
              "print(before, d.triton_available.cache_info().misses)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "1"]  # no op imports triton on import; the check runs once


def test_check_helpers_messages():
    with pytest.raises(TypeError, match=r"^ops\.a\.b: `t` must be a torch.Tensor, got list"):
        check_tensor("a.b", "t", [1, 2])
    with pytest.raises(ValueError, match=r"^ops\.a\.b: `t` must have shape \(N, 7\+\), got \(3, 6\)"):
        check_tensor("a.b", "t", torch.zeros(3, 6), ("N", "7+"))
    with pytest.raises(ValueError, match=r"`t` must have shape \(5,\), got \(4,\)"):
        check_tensor("a.b", "t", torch.zeros(4), (5,))
    with pytest.raises(TypeError, match=r"`t` must be int32/int64, got torch.float32"):
        check_tensor("a.b", "t", torch.zeros(4), ("N",), "int")
    with pytest.raises(TypeError, match=r"`t` must be floating point, got torch.int64"):
        check_tensor("a.b", "t", torch.zeros(4, dtype=torch.long), dtype="float")
    t = torch.zeros(2, 9)
    assert check_tensor("a.b", "t", t, (2, "7+"), "float") is t
    assert check_offsets("a.b", "offsets", torch.tensor([0, 2, 2, 5]), 5) == 3
    with pytest.raises(ValueError, match=r"^ops\.a\.b: `offsets` must start at 0 and end at N=5, got 0 \.\. 4"):
        check_offsets("a.b", "offsets", torch.tensor([0, 4]), 5)


@pytest.mark.parametrize("call,prefix", [
    (lambda: importlib.import_module("perception3d.ops.voxelize").dynamic_voxelize(
        torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), (1, 1, 1), (0, 0, 0, 1, 1, 1)),
     "ops.voxelize.dynamic_voxelize: `points`"),
    (lambda: importlib.import_module("perception3d.ops.scatter").scatter_max(torch.zeros(3, 2), torch.zeros(2), 1),
     "ops.scatter.scatter_max: `index`"),
    (lambda: importlib.import_module("perception3d.ops.box_iou").bev_iou(torch.zeros(1, 7), torch.zeros(1, 5)),
     "ops.box_iou.bev_iou: `boxes_b`"),
    (lambda: importlib.import_module("perception3d.ops.nms").nms_bev(torch.zeros(2, 7), torch.zeros(3), 0.5),
     "ops.nms.nms_bev: `scores`"),
    (lambda: importlib.import_module("perception3d.ops.dsvt").window_partition(
        torch.zeros(1, 3, dtype=torch.long), (4, 4, 1), (2, 2, 1)), "ops.dsvt.window_partition: `coords`"),
    (lambda: importlib.import_module("perception3d.ops.flat_window").flattened_window_mapping(
        torch.zeros(1, 4), 1, (4, 4), (2, 2), 2), "ops.flat_window.flattened_window_mapping: `coords`"),
    (lambda: importlib.import_module("perception3d.ops.scatter_attention").bev_window_partition(
        torch.zeros(1, 4, dtype=torch.long), (0, 2)), "ops.scatter_attention.bev_window_partition: `window_shape`"),
    (lambda: importlib.import_module("perception3d.ops.window_attention_padded").padded_window_attention(
        *[torch.zeros(3, 1, 2)] * 3, torch.tensor([0, 2])), "ops.window_attention_padded.padded_window_attention: "
     "`window_offsets`"),
    (lambda: importlib.import_module("perception3d.ops.deform_attn").depth_score_sample(
        torch.zeros(1, 4, 3), [[2, 2]], [0], torch.zeros(1, 1, 1, 1, 1, 2)),
     "ops.deform_attn.depth_score_sample: `sampling_locations_3d`"),
])
def test_every_op_uses_the_one_error_prefix(call, prefix):
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    assert str(err.value).startswith(prefix), str(err.value)


def test_impl_only_where_two_implementations_exist():
    seen = set()
    for op in OPS:
        mod = importlib.import_module(f"perception3d.ops.{op}")
        for name in mod.__all__:
            fn = getattr(mod, name)
            if not inspect.isfunction(fn):
                continue
            key = f"{op}.{name}"
            seen.add(key)
            assert ("impl" in inspect.signature(fn).parameters) == (key in TWO_IMPLS), key
    assert TWO_IMPLS <= seen
