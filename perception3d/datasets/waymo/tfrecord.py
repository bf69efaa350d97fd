"""TFRecord files without TensorFlow: streaming reader, random access by byte offset, atomic writer.

A record is ``uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)``, all
little-endian, uncompressed. CRC32C is the Castagnoli CRC (``google_crc32c``); the mask is
``((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2**32. Both CRCs are verified on every read; a mismatch or
a truncated record raises :class:`TFRecordError` naming the file, the record index (when known) and the byte
offset of the record.
"""
from __future__ import annotations

import os
import struct
from typing import BinaryIO, Iterable, Iterator

import google_crc32c

from perception3d.utils.atomic import atomic_open

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")  # length, masked crc of the 8 length bytes
_FOOTER = struct.Struct("<I")  # masked crc of the data


class TFRecordError(ValueError):
    """A TFRecord file is corrupt (CRC mismatch) or truncated."""


def crc32c(data: bytes) -> int:
    """Plain CRC32C (Castagnoli) of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
    return google_crc32c.value(bytes(data))


def masked_crc32c(data: bytes) -> int:
    """The masked CRC32C TFRecord stores for ``data``."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _where(path, index: int | None, offset: int) -> str:
    rec = f"record {index}" if index is not None else "record"
    return f"{os.fspath(path)}: {rec} at byte offset {offset}"


def _read_header(f: BinaryIO, path, index: int | None, offset: int) -> int | None:
    """The data length of the record starting at ``offset`` (the file positioned there), or None at a clean end
    of file. Verifies the length CRC."""
    head = f.read(_HEADER.size)
    if not head:
        return None
    if len(head) < _HEADER.size:
        raise TFRecordError(f"{_where(path, index, offset)}: truncated header ({len(head)} of {_HEADER.size} "
                            f"bytes)")
    length, length_crc = _HEADER.unpack(head)
    if masked_crc32c(head[:8]) != length_crc:
        raise TFRecordError(f"{_where(path, index, offset)}: length CRC mismatch (stored {length_crc:#010x}, "
                            f"computed {masked_crc32c(head[:8]):#010x}); the file is corrupt or not a TFRecord")
    return length


def _read_body(f: BinaryIO, length: int, path, index: int | None, offset: int) -> bytes:
    data = f.read(length)
    if len(data) < length:
        raise TFRecordError(f"{_where(path, index, offset)}: truncated data ({len(data)} of {length} bytes)")
    foot = f.read(_FOOTER.size)
    if len(foot) < _FOOTER.size:
        raise TFRecordError(f"{_where(path, index, offset)}: truncated data CRC ({len(foot)} of {_FOOTER.size} "
                            f"bytes)")
    (data_crc,) = _FOOTER.unpack(foot)
    if masked_crc32c(data) != data_crc:
        raise TFRecordError(f"{_where(path, index, offset)}: data CRC mismatch (stored {data_crc:#010x}, "
                            f"computed {masked_crc32c(data):#010x}); the record is corrupt")
    return data


def iter_records(path: str | os.PathLike) -> Iterator[bytes]:
    """The records of a TFRecord file, read one at a time (the file is never held in memory), both CRCs
    verified."""
    with open(path, "rb") as f:
        index, offset = 0, 0
        while True:
            length = _read_header(f, path, index, offset)
            if length is None:
                return
            data = _read_body(f, length, path, index, offset)
            yield data
            offset += _HEADER.size + length + _FOOTER.size
            index += 1


def record_offsets(path: str | os.PathLike) -> list[int]:
    """Byte offsets of the records of a TFRecord file, for :func:`read_record`. Reads only the 12-byte headers
    (length CRCs verified; a record running past the end of the file is reported as truncated); data CRCs are
    verified when a record is read."""
    size = os.path.getsize(path)
    offsets = []
    with open(path, "rb") as f:
        offset = 0
        while True:
            length = _read_header(f, path, len(offsets), offset)
            if length is None:
                return offsets
            end = offset + _HEADER.size + length + _FOOTER.size
            if end > size:
                raise TFRecordError(f"{_where(path, len(offsets), offset)}: truncated record (needs {end - offset} "
                                    f"bytes, the file has {size - offset} left)")
            offsets.append(offset)
            offset = end
            f.seek(offset)


def read_record(path: str | os.PathLike, offset: int) -> bytes:
    """The record starting at byte ``offset`` (from :func:`record_offsets`), both CRCs verified."""
    with open(path, "rb") as f:
        f.seek(offset)
        length = _read_header(f, path, None, offset)
        if length is None:
            raise TFRecordError(f"{_where(path, None, offset)}: no record there (end of file)")
        return _read_body(f, length, path, None, offset)


def encode_record(data: bytes) -> bytes:
    """One framed record (header, data, footer)."""
    data = bytes(data)
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def write_records(path: str | os.PathLike, records: Iterable[bytes]) -> int:
    """Write ``records`` (consumed lazily) as a TFRecord file, atomically (a temp file renamed into place only
    when every record was written). Returns the number of records."""
    n = 0
    with atomic_open(path, "wb") as f:
        for data in records:
            f.write(encode_record(data))
            n += 1
    return n
