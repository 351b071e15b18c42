"""The framing of dagmake's hand-written binary files (the compiled workflow, the state index,
the no-op snapshot): what says "this is one of ours, whole, in this version".

    magic    4 bytes   which format
    version  4 bytes   its version (native order, as the payload: these files never travel)
    length   8 bytes   the payload's length
    check    8 bytes   xxh3-64 of the 16 bytes above and the payload
    payload

Each of these files only makes a run faster, so reading one that is anything else (another
format or version, cut short, a byte flipped, a stranger's file) raises `Damaged`, a
ValueError, before any of its payload is used: the caller starts over (parses the YAML,
reads the journal, decides in full), never crashes. The check covers the whole payload, so
damage is found when the file is read, not when a part of it is first used mid-run.
"""

from __future__ import annotations

import struct

import xxhash

TYPE_CHECKING = False  # not `typing`'s: the no-op's first look (`fast.quick`) loads no typing
if TYPE_CHECKING:
    import mmap
    from collections.abc import Sequence

COMPILED = b"DMwf"  # a compiled workflow (`fast.compiled`)
STATE_INDEX = b"DMsi"  # the state journal's index (`state`)
SNAPSHOT = b"DMns"  # the no-op snapshot (`fast.noop`)

_HEAD = struct.Struct("=4sIQ")
_CHECK_SIZE = 8
HEADER_SIZE = _HEAD.size + _CHECK_SIZE

Part = bytes | bytearray | memoryview


class Damaged(ValueError):
    """Not a whole file of this format and version."""


def framed(magic: bytes, version: int, parts: Sequence[Part]) -> list[Part]:
    """The file's parts: the header, then `parts` (not joined: a state index is a few MB)."""
    head = _HEAD.pack(magic, version, sum(map(len, parts)))
    h = xxhash.xxh3_64(head)
    for part in parts:
        h.update(part)
    return [head + h.digest(), *parts]


def unframed(data: bytes | mmap.mmap, magic: bytes, version: int) -> memoryview:
    """The payload of a `framed` file of this `magic` and `version`, without a copy; else
    Damaged."""
    if len(data) < HEADER_SIZE:
        raise Damaged("cut short")
    view = memoryview(data)
    found, found_version, length = _HEAD.unpack_from(view)
    if found != magic:
        raise Damaged("another format")
    if found_version != version:
        raise Damaged(f"version {found_version}, not {version}")
    if length != len(data) - HEADER_SIZE:
        raise Damaged("cut short or run on")
    payload = view[HEADER_SIZE:]
    h = xxhash.xxh3_64(view[: _HEAD.size])
    h.update(payload)
    if h.digest() != view[_HEAD.size : HEADER_SIZE]:
        raise Damaged("checksum")
    return payload


def seal(data: bytes | bytearray | memoryview | mmap.mmap) -> bytes:
    """What tells one writing of a file from another: its header, check included (the no-op
    snapshot's retake writes only while the file is still the one it read)."""
    return bytes(data[:HEADER_SIZE])
