"""A read-only hash table in one bytes object (the idea of D. J. Bernstein's cdb): loading it
creates no Python object per key, so a run that reads 3 entries of 15,000 pays for 3.

Layout, in the machine's byte order (the file never leaves the machine's cache):

    b"DMT2" | count u64 | slots u64 | where the slots start u64 | entry * count | slot * slots
    entry:  key length u32 | value length u32 | key | value
    slot:   u64, the offset of an entry plus one; 0 for an empty slot

A key's slot is found by linear probing from xxh3-64(key) modulo `slots` (a power of two, at
least twice `count`). Entries come first so a table is written in one pass. Nothing here checks
the bytes: callers frame the whole (`framing`).
"""

from __future__ import annotations

import array
import struct
from collections.abc import Iterable, Iterator

import xxhash

_MAGIC = b"DMT2"
_HEAD = struct.Struct("=4sQQQ")
_ENTRY = struct.Struct("=II")


def build(items: Iterable[tuple[bytes, bytes]]) -> bytearray:
    """The table of `items` (keys unique), built in place: no second copy of the values."""
    buf = bytearray(_HEAD.size)
    spots: list[tuple[int, int]] = []  # (hash of the key, where its entry starts + 1)
    for key, value in items:
        spots.append((xxhash.xxh3_64_intdigest(key), len(buf) + 1))
        buf += _ENTRY.pack(len(key), len(value))
        buf += key
        buf += value
    slots = 8
    while slots < 2 * len(spots):
        slots *= 2
    table = [0] * slots
    mask = slots - 1
    for h, at in spots:
        i = h & mask
        while table[i]:
            i = (i + 1) & mask
        table[i] = at
    slots_at = len(buf)
    buf += array.array("Q", table).tobytes()
    _HEAD.pack_into(buf, 0, _MAGIC, len(spots), slots, slots_at)
    return buf


class Table:
    __slots__ = ("_buf", "_mask", "_slots", "count")

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        try:
            magic, self.count, slots, slots_at = _HEAD.unpack_from(buf, 0)
        except struct.error:
            raise ValueError("not a table") from None
        if magic != _MAGIC or slots & (slots - 1) or slots_at + 8 * slots != len(buf):
            raise ValueError("not a table")
        self._buf = buf
        self._slots = memoryview(buf)[slots_at:].cast("Q")
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
        buf, at = self._buf, _HEAD.size
        for _ in range(self.count):
            klen, vlen = _ENTRY.unpack_from(buf, at)
            start = at + _ENTRY.size
            yield bytes(buf[start : start + klen]), bytes(buf[start + klen : start + klen + vlen])
            at = start + klen + vlen
