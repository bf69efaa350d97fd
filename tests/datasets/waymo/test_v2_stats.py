"""Waymo v2 stats: the per-type object counts written from ``frame.stats`` (else the labels) and read back as the
v1 reader gives them; files without the count columns; errors; the released v1 frames keep their stats."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perception3d.datasets.waymo import v2
from test_v2 import CTX, SPLIT, _path, _rewrite, make_frames  # noqa: E402


def test_stats_object_counts(tmp_path):
    """frame.stats counts ({type: count}, the v1 keys) are written and read back; without them the writer stores
    the labels' per-type counts; a file without the count columns reads the strings only; bad counts are errors."""
    frames = make_frames(2)
    del frames[0].stats["laser_object_counts"]  # -> the labels' counts
    frames[1].stats.update(laser_object_counts={4: 7, 1: 2}, camera_object_counts={1: 5, 2: 3})
    v2.write_segment(tmp_path, SPLIT, frames)
    rows = pq.read_table(_path(tmp_path, "stats")).to_pylist()
    assert [r["[StatsComponent].lidar_object_counts.types"] for r in rows] == [[1, 2, 4], [4, 1]]
    assert [r["[StatsComponent].camera_object_counts.counts"] for r in rows] == [[], [5, 3]]
    a, b = v2.read_segment(tmp_path, SPLIT, CTX)
    assert a.stats == dict(frames[0].stats, laser_object_counts={1: 1, 2: 1, 4: 1})
    assert b.stats == frames[1].stats and "camera_object_counts" not in a.stats

    counts = [f"[StatsComponent].{g}_object_counts.{k}" for g in ("lidar", "camera") for k in ("types", "counts")]
    _rewrite(tmp_path, "stats", lambda t: t.drop_columns(counts))  # the strings only: still read
    assert [f.stats for f in v2.read_segment(tmp_path, SPLIT, CTX)] == \
           [{"time_of_day": "Day", "location": "location_sf", "weather": "sunny"}] * 2

    v2.write_segment(tmp_path, SPLIT, frames)
    _rewrite(tmp_path, "stats", lambda t: t.drop_columns([counts[3]]))
    with pytest.raises(ValueError, match=r"stats/.*'\[StatsComponent\]\.camera_object_counts\.types' but not "
                                         r"'\[StatsComponent\]\.camera_object_counts\.counts'"):
        v2.read_segment(tmp_path, SPLIT, CTX)
    v2.write_segment(tmp_path, SPLIT, frames)
    _rewrite(tmp_path, "stats", lambda t: t.set_column(t.schema.get_field_index(counts[1]), counts[1],
                                                       pa.array([[1, 1, 1], [2]], pa.list_(pa.int32()))))
    with pytest.raises(ValueError, match=r"stats/.*lidar_object_counts\.counts'.* 1 counts for the 2 types"):
        list(v2.read_segment(tmp_path, SPLIT, CTX))

    frames[1].stats["camera_object_counts"] = {"car": 1}
    with pytest.raises(ValueError, match=r"@1550000000100000: stats\['camera_object_counts'\] must map integer"):
        v2.write_segment(tmp_path / "bad", SPLIT, frames)
    frames[1].stats["camera_object_counts"] = {1: -1}
    with pytest.raises(ValueError, match=r"stats\['camera_object_counts'\]: types must be in \[0, 127\]"):
        v2.write_segment(tmp_path / "bad", SPLIT, frames)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").rglob("*.parquet"))


def test_real_v1_frames_keep_their_stats_in_v2(real_data, tmp_path):
    """The released v1 frames carry laser and camera object counts; through v2 they read back the same."""
    from perception3d.datasets.waymo import v1

    files = sorted((real_data / "waymo").glob("*.tfrecord"))
    assert files
    for path in files:
        (f1,) = v1.iter_frames(path)
        assert f1.stats["laser_object_counts"] and f1.stats["camera_object_counts"]
        v2.write_segment(tmp_path, SPLIT, [f1])
        (f2,) = v2.read_segment(tmp_path, SPLIT, f1.context_name, with_images=False)
        assert f2.stats == f1.stats
