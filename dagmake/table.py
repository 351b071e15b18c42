"""A read-only hash table in one bytes object (the idea of D. J. Bernstein's cdb): loading it
creates no Python object per key, so a run that reads 3 entries of 15,000 pays for 3.

Layout, in the machine's byte order (the file never leaves the machine's cache):

    b"DMT1" | count u64 | slots u64 | slot * slots | entry * count
    slot:   u64, the offset of an entry plus one; 0 for an empty slot
    entry:  key length u32 | value length u32 | key | value

A key's slot is found by linear probing from xxh3-64(key) modulo `slots` (a power of two, at
least twice `count`). Nothing here checks the bytes: callers seal the whole (`fsutil.sealed`).
"""

from __future__ import annotations

import array
import struct
from collections.abc import Iterable, Iterator

import xxhash

_MAGIC = b"DMT1"
_HEAD = struct.Struct("=4sQQ")
_ENTRY = struct.Struct("=II")


def build(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The table of `items` (keys unique)."""
    pairs = list(items)
    slots = 8
    while slots < 2 * len(pairs):
        slots *= 2
    table = [0] * slots
    mask = slots - 1
    base = _HEAD.size + 8 * slots
    body: list[bytes] = []
    at = base
    for key, value in pairs:
        i = xxhash.xxh3_64_intdigest(key) & mask
        while table[i]:
            i = (i + 1) & mask
        table[i] = at + 1
        body.append(_ENTRY.pack(len(key), len(value)))
        body.append(key)
        body.append(value)
        at += _ENTRY.size + len(key) + len(value)
    head = _HEAD.pack(_MAGIC, len(pairs), slots)
    return b"".join([head, array.array("Q", table).tobytes(), *body])


class Table:
    __slots__ = ("_base", "_buf", "_mask", "_slots", "count")

    def __init__(self, buf: bytes | memoryview) -> None:
        magic, self.count, slots = _HEAD.unpack_from(buf, 0)
        if magic != _MAGIC or slots & (slots - 1) or _HEAD.size + 8 * slots > len(buf):
            raise ValueError("not a table")
        self._buf = buf
        self._base = _HEAD.size + 8 * slots
        self._slots = memoryview(buf)[_HEAD.size : self._base].cast("Q")
        self._mask = slots - 1

    def get(self, key: bytes) -> bytes | None:
        buf, slots, mask = self._buf, self._slots, self._mask
        i = xxhash.xxh3_64_intdigest(key) & mask
        while at := slots[i]:
            start = at - 1 + _ENTRY.size
            klen, vlen = _ENTRY.unpack_from(buf, at - 1)
            if buf[start : start + klen] == key:
                return bytes(buf[start + klen : start + klen + vlen])
            i = (i + 1) & mask
        return None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        buf, at = self._buf, self._base
        for _ in range(self.count):
            klen, vlen = _ENTRY.unpack_from(buf, at)
            start = at + _ENTRY.size
            yield bytes(buf[start : start + klen]), bytes(buf[start + klen : start + klen + vlen])
            at = start + klen + vlen
