"""Read slices of the arrays inside an ``.npz`` file without loading whole members.

``np.load(path, mmap_mode="r")`` ignores ``mmap_mode`` for ``.npz`` members: every member is
read and decompressed whole. An ``.npz`` is a zip of ``.npy`` files, though, and a member
written without compression (``np.savez``) lies in the file as is, at an offset the zip
headers give. :class:`NpzSlices` finds that offset and the member's ``.npy`` header, then
reads only the bytes of the rows asked for (a seek and a read per contiguous run).
Compressed members (``np.savez_compressed``) are read through the zip stream instead,
decompressing forward up to the rows asked for and discarding the rest: slower, but memory
stays bounded by the zip module's buffer, never by the member's size.

Anything malformed (not a zip, a truncated file, a missing member, an object array that
would need pickle) raises :class:`CorruptFile`, whose message names the problem.
"""

from __future__ import annotations

import ast
import struct
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import attrs
import numpy as np

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then name and extra-field lengths
_NPY_MAGIC = b"\x93NUMPY"
_NPY_PREAMBLE = 12  # magic, version and header length (2 bytes in version 1, 4 after)
_HEAD_READ = 512  # bytes read at a zip entry: its local header and, nearly always, the .npy header


class CorruptFile(Exception):
    """A sentence file that is not a readable ``.npz`` of plain arrays."""


@attrs.frozen
class Member:
    """One ``.npy`` inside the zip: its dtype and shape, and where its data starts."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    data_offset: int | None  # absolute offset of the array data in the file; None: compressed member


class NpzSlices:
    """An open ``.npz`` whose members are read by flat element ranges (C order)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._file: BinaryIO = open(self.path, "rb")
        except OSError as exc:
            raise CorruptFile(f"cannot open ({exc.strerror})") from None
        try:
            self._zip = zipfile.ZipFile(self._file)
            self.members = {info.filename.removesuffix(".npy"): info for info in self._zip.infolist()}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            self.close()
            raise CorruptFile(f"not a readable .npz ({exc})") from None
        self._parsed: dict[str, Member] = {}

    def __enter__(self) -> "NpzSlices":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def member(self, name: str) -> Member:
        """The header of member ``name`` (parsed once)."""
        if name not in self._parsed:
            if name not in self.members:
                raise CorruptFile(f"has no '{name}' array")
            self._parsed[name] = self._parse(name)
        return self._parsed[name]

    def _parse(self, name: str) -> Member:
        info = self.members[name]
        try:
            if info.compress_type == zipfile.ZIP_STORED:
                # one read usually holds the zip entry's local header and the whole .npy header
                self._file.seek(info.header_offset)
                head = self._file.read(_HEAD_READ)
                if len(head) < _LOCAL_HEADER.size:
                    raise EOFError("file ends inside a zip entry header")
                signature, n_name, n_extra = _LOCAL_HEADER.unpack_from(head)
                if signature != b"PK\x03\x04":
                    raise CorruptFile(f"'{name}': bad zip entry header")
                npy_start = info.header_offset + _LOCAL_HEADER.size + n_name + n_extra
                head = head[npy_start - info.header_offset:]
                if len(head) < _NPY_PREAMBLE:
                    self._file.seek(npy_start)
                    head = _read_exactly(self._file, _NPY_PREAMBLE)
                text_start, text_len = _npy_preamble(head, name)
                text = head[text_start:text_start + text_len]
                if len(text) < text_len:
                    self._file.seek(npy_start + text_start)
                    text = _read_exactly(self._file, text_len)
                return Member(name, *_npy_fields(text, name), npy_start + text_start + text_len)
            with self._zip.open(info) as stream:
                head = _read_exactly(stream, _NPY_PREAMBLE)
                text_start, text_len = _npy_preamble(head, name)
                text = head[text_start:] + _read_exactly(stream, text_start + text_len - _NPY_PREAMBLE)
                return Member(name, *_npy_fields(text, name), None)
        except (OSError, ValueError, EOFError, struct.error, zipfile.BadZipFile) as exc:
            raise CorruptFile(f"'{name}': unreadable ({exc})") from None

    def read(self, name: str) -> np.ndarray:
        """The whole member (for the small ones: labels, masks, layer lists)."""
        m = self.member(name)
        return self.read_flat(name, 0, int(np.prod(m.shape, dtype=np.int64))).reshape(m.shape)

    def read_flat(self, name: str, start: int, count: int) -> np.ndarray:
        """Elements ``[start, start + count)`` of the member in C order, as a 1-d array."""
        m = self.member(name)
        size = m.dtype.itemsize
        try:
            if m.data_offset is not None:
                self._file.seek(m.data_offset + start * size)
                raw = _read_exactly(self._file, count * size)
            else:
                with self._zip.open(self.members[name]) as stream:
                    text_start, text_len = _npy_preamble(_read_exactly(stream, _NPY_PREAMBLE), name)
                    stream.seek(text_start + text_len + start * size)
                    raw = _read_exactly(stream, count * size)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise CorruptFile(f"'{name}': truncated or unreadable ({exc})") from None
        return np.frombuffer(raw, dtype=m.dtype).copy()


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"wanted {n} bytes, found {len(data)}")
    return data


def _npy_preamble(head: bytes, name: str) -> tuple[int, int]:
    """Where the ``.npy`` header text starts and how long it is, from the file's first 12 bytes."""
    if head[:6] != _NPY_MAGIC:
        raise CorruptFile(f"'{name}' is not an .npy array")
    major = head[6]
    if major == 1:
        return 10, struct.unpack_from("<H", head, 8)[0]
    if major in (2, 3):
        return 12, struct.unpack_from("<I", head, 8)[0]
    raise CorruptFile(f"'{name}': unknown .npy version {major}")


def _npy_fields(text: bytes, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    try:
        return _parse_header_text(text)
    except (SyntaxError, ValueError, KeyError, TypeError) as exc:
        raise CorruptFile(f"'{name}': bad .npy header ({exc})") from None


@lru_cache(maxsize=1024)
def _parse_header_text(text: bytes) -> tuple[np.dtype, tuple[int, ...]]:
    """dtype and shape of an ``.npy`` header; cached, since files of one directory repeat their headers."""
    header = ast.literal_eval(text.decode("latin1"))
    dtype = np.lib.format.descr_to_dtype(header["descr"])
    if dtype.hasobject:
        raise ValueError("holds Python objects (would need allow_pickle)")
    shape = tuple(int(s) for s in header["shape"])
    if header["fortran_order"] and len(shape) > 1:
        raise ValueError("stored in Fortran order; write it C-contiguous")
    return dtype, shape
