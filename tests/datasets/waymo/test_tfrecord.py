"""TFRecord framing: CRC32C against its check value and a bit-by-bit reference, both CRCs on the real Waymo
records, corrupted and truncated copies rejected with the file / record index / offset, random access,
streaming, atomic writes."""
from __future__ import annotations

import os
import re
import struct

import numpy as np
import pytest

from perception3d.datasets.waymo.tfrecord import (TFRecordError, crc32c, encode_record, iter_records,
                                                  masked_crc32c, read_record, record_offsets, write_records)

REAL_FILES = ("one_frame_with_camera_images.tfrecord", "val_one_frame_no_range_images.tfrecord")


def _crc32c_bitwise(data: bytes) -> int:
    """Reference CRC32C: reflected Castagnoli polynomial, one bit at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_check_value_and_mask():
    assert crc32c(b"123456789") == 0xE3069283
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 100):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        crc = _crc32c_bitwise(data)
        assert crc32c(data) == crc
        assert masked_crc32c(data) == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_records_verify(real_data, name):
    path = real_data / "waymo" / name
    raw = path.read_bytes()
    records = list(iter_records(path))
    assert len(records) == 1 and len(records[0]) == len(raw) - 16
    # the stored CRCs are the ones we compute (checked here directly on the bytes, not via the reader)
    assert struct.unpack("<I", raw[8:12])[0] == masked_crc32c(raw[:8])
    assert struct.unpack("<I", raw[-4:])[0] == masked_crc32c(records[0])
    assert record_offsets(path) == [0]
    assert read_record(path, 0) == records[0]
    assert encode_record(records[0]) == raw


def _three_records(real_data, tmp_path):
    """The small real record three times in one file: (path, records, offsets)."""
    rec = next(iter_records(real_data / "waymo" / REAL_FILES[1]))
    records = [rec, rec[::-1], rec[:1000]]
    path = tmp_path / "three.tfrecord"
    assert write_records(path, records) == 3
    offsets = [0, len(rec) + 16, 2 * len(rec) + 32]
    return path, records, offsets


def _corrupt(path, position: int | None = None, truncate: int | None = None):
    raw = bytearray(path.read_bytes())
    if position is not None:
        raw[position] ^= 0x40
    if truncate is not None:
        raw = raw[:truncate]
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("where,message", [("data", "data CRC mismatch"), ("length", "length CRC mismatch"),
                                           ("length_crc", "length CRC mismatch"), ("data_crc", "data CRC mismatch"),
                                           ("truncated", "truncated data"), ("truncated_crc", "truncated data CRC"),
                                           ("truncated_header", "truncated header")])
def test_corrupted_last_record_is_named(real_data, tmp_path, where, message):
    path, records, offsets = _three_records(real_data, tmp_path)
    start, end = offsets[2], os.path.getsize(path)
    _corrupt(path, **{"data": dict(position=start + 12 + 500), "length": dict(position=start + 1),
                      "length_crc": dict(position=start + 9), "data_crc": dict(position=end - 2),
                      "truncated": dict(truncate=end - 100), "truncated_crc": dict(truncate=end - 2),
                      "truncated_header": dict(truncate=start + 5)}[where])
    got = []
    with pytest.raises(TFRecordError, match=re.escape(f"{path}: record 2 at byte offset {start}: {message}")):
        for rec in iter_records(path):  # streaming: the good records come out before the error
            got.append(rec)
    assert got == records[:2]
    if where.startswith(("length", "truncated")):  # the header scan alone sees these
        with pytest.raises(TFRecordError, match=re.escape(f"record 2 at byte offset {start}")):
            record_offsets(path)
    else:
        assert record_offsets(path) == offsets
        with pytest.raises(TFRecordError, match=re.escape(f"{path}: record at byte offset {start}: {message}")):
            read_record(path, start)
        assert read_record(path, offsets[1]) == records[1]


@pytest.mark.parametrize("name", REAL_FILES)
def test_corrupted_real_record(real_data, tmp_path, name):
    path = tmp_path / name
    path.write_bytes((real_data / "waymo" / name).read_bytes())
    _corrupt(path, position=os.path.getsize(path) // 2)
    with pytest.raises(TFRecordError, match=re.escape(f"{path}: record 0 at byte offset 0: data CRC mismatch")):
        list(iter_records(path))


def test_read_record_at_end_of_file(real_data, tmp_path):
    path, _, _ = _three_records(real_data, tmp_path)
    with pytest.raises(TFRecordError, match="no record there"):
        read_record(path, os.path.getsize(path))


def test_write_records_round_trip_and_atomic(tmp_path, leftovers):
    records = [b"", b"a", bytes(range(256)) * 3]
    path = tmp_path / "out" / "r.tfrecord"
    assert write_records(path, iter(records)) == 3
    assert list(iter_records(path)) == records
    assert [read_record(path, o) for o in record_offsets(path)] == records
    assert leftovers(tmp_path) == []

    def failing():
        yield b"first"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_records(path, failing())
    assert list(iter_records(path)) == records  # the previous file is untouched
    assert leftovers(tmp_path) == []
    with pytest.raises(RuntimeError):
        write_records(tmp_path / "new.tfrecord", failing())
    assert not (tmp_path / "new.tfrecord").exists() and leftovers(tmp_path) == []
