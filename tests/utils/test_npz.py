"""utils.npz.read_npz: the one .npz reader (occupancy / Gaussians results, Occ3D labels)."""
import numpy as np
import pytest

from perception3d.utils.npz import read_npz


def test_read_npz_fields_and_errors(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, x=np.arange(3), y=np.zeros(2))
    assert sorted(read_npz(path, ["x"], "thing")) == ["x", "y"]
    assert sorted(read_npz(path, ["x"], "thing", only_fields=True)) == ["x"]
    with pytest.raises(KeyError, match=r"a\.npz: no field .z. in the thing \(has \[.x., .y.\]; expected"):
        read_npz(path, ["x", "z"], "thing")
    with pytest.raises(FileNotFoundError, match="thing not found: .*nope.npz"):
        read_npz(tmp_path / "nope.npz", ["x"], "thing")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"bad\.npz: not a readable \.npz file"):
        read_npz(tmp_path / "bad.npz", ["x"], "thing")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))  # pickles are refused
    with pytest.raises(ValueError, match=r"obj\.npz: not a readable \.npz file"):
        read_npz(tmp_path / "obj.npz", ["x"], "thing")
