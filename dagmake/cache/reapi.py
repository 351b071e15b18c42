"""The few REAPI messages a remote cache entry needs (`build.bazel.remote.execution.v2`:
ActionResult, OutputFile, OutputSymlink, Digest), written and read in protobuf's wire format
by hand: no protobuf dependency for five messages.

Fields used (numbers as in remote_execution.proto):

    Digest        1 hash (string), 2 size_bytes (int64)
    OutputFile    1 path, 2 digest, 4 is_executable, 5 contents (inline bytes)
    OutputSymlink 1 path, 2 target
    ActionResult  2 output_files, 4 exit_code, 5 stdout_raw (inline bytes), 6 stdout_digest,
                  10 output_file_symlinks (read only), 12 output_symlinks

Any other field is skipped on reading, as protobuf does; `decode` raises ValueError for bytes
that are not such a message (a truncated field, a wrong wire type, bad UTF-8).
"""

from __future__ import annotations

from typing import NamedTuple

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class Blob(NamedTuple):
    """A REAPI Digest: the SHA-256 hex of a content and its size."""

    hash: str
    size: int


class File(NamedTuple):
    path: str
    digest: Blob
    executable: bool = False
    contents: bytes | None = None  # carried in the entry (its digest still names it)


class Symlink(NamedTuple):
    path: str
    target: str


class Result(NamedTuple):
    files: tuple[File, ...] = ()
    symlinks: tuple[Symlink, ...] = ()
    exit_code: int = 0
    stdout: Blob | None = None
    stdout_raw: bytes | None = None  # the log's bytes, carried in the entry


# -- writing ---------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int32/int64 negatives: ten bytes, two's complement
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes(field: int, data: bytes) -> bytes:
    return _tag(field, _LEN) + _varint(len(data)) + data


def _int(field: int, n: int) -> bytes:
    return _tag(field, _VARINT) + _varint(n) if n else b""


def _digest(d: Blob) -> bytes:
    return _bytes(1, d.hash.encode("ascii")) + _int(2, d.size)


def encode(result: Result) -> bytes:
    out = bytearray()
    for f in result.files:
        body = _bytes(1, f.path.encode()) + _bytes(2, _digest(f.digest))
        if f.executable:
            body += _int(4, 1)
        if f.contents is not None:
            body += _bytes(5, f.contents)
        out += _bytes(2, body)
    out += _int(4, result.exit_code)
    if result.stdout_raw is not None:
        out += _bytes(5, result.stdout_raw)
    if result.stdout is not None:
        out += _bytes(6, _digest(result.stdout))
    for s in result.symlinks:
        out += _bytes(12, _bytes(1, s.path.encode()) + _bytes(2, s.target.encode()))
    return bytes(out)


# -- reading ---------------------------------------------------------------------------------

Fields = dict[int, list[int | bytes]]


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("a truncated varint")
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _fields(data: bytes) -> Fields:
    """Each field number's values, in order: ints for varints, bytes for length-delimited
    ones; fixed-width fields are skipped."""
    found: Fields = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            value, i = _read_varint(data, i)
            found.setdefault(field, []).append(value)
        elif wire == _LEN:
            size, i = _read_varint(data, i)
            if i + size > len(data):
                raise ValueError("a truncated field")
            found.setdefault(field, []).append(data[i : i + size])
            i += size
        elif wire in (_I64, _I32):
            i += 8 if wire == _I64 else 4
            if i > len(data):
                raise ValueError("a truncated field")
        else:
            raise ValueError(f"wire type {wire}")
    return found


def _last_bytes(fields: Fields, field: int) -> bytes | None:
    values = fields.get(field)
    if not values:
        return None
    value = values[-1]
    if not isinstance(value, bytes):
        raise ValueError(f"field {field} is not length-delimited")
    return value


def _last_int(fields: Fields, field: int) -> int:
    values = fields.get(field)
    if not values:
        return 0
    value = values[-1]
    if not isinstance(value, int):
        raise ValueError(f"field {field} is not a varint")
    return value


def _text(fields: Fields, field: int) -> str:
    return (_last_bytes(fields, field) or b"").decode("utf-8")


def _all_bytes(fields: Fields, field: int) -> list[bytes]:
    values = fields.get(field, [])
    if not all(isinstance(v, bytes) for v in values):
        raise ValueError(f"field {field} is not length-delimited")
    return [v for v in values if isinstance(v, bytes)]


def _read_digest(data: bytes | None) -> Blob | None:
    if data is None:
        return None
    f = _fields(data)
    size = _last_int(f, 2)
    if size >= 1 << 63:
        raise ValueError("a negative size")
    return Blob(_text(f, 1), size)


def decode(data: bytes) -> Result:
    top = _fields(data)
    files = []
    for raw in _all_bytes(top, 2):
        f = _fields(raw)
        digest = _read_digest(_last_bytes(f, 2))
        if digest is None:
            raise ValueError("an output file without a digest")
        files.append(File(_text(f, 1), digest, bool(_last_int(f, 4)), _last_bytes(f, 5)))
    symlinks = []
    for raw in [*_all_bytes(top, 10), *_all_bytes(top, 12)]:
        f = _fields(raw)
        symlinks.append(Symlink(_text(f, 1), _text(f, 2)))
    code = _last_int(top, 4)
    if code >= 1 << 63:
        code -= 1 << 64
    stdout = _read_digest(_last_bytes(top, 6))
    return Result(tuple(files), tuple(symlinks), code, stdout, _last_bytes(top, 5))
