"""Human quantities in workflow files, options and environment variables: durations (`90s`,
`5m`, `500ms`), sizes (`5GB`, `500MB`) and ages (`30d`). Each parser raises ValueError with a
sentence that ends in an example; callers add where the text came from."""

from __future__ import annotations

import re

_NUMBER_UNIT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*\Z")
_DURATION_S = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_AGE_S = {**_DURATION_S, "d": 86400.0, "w": 7 * 86400.0}
# Binary multiples: a "GB" of cache is the GiB `du -h` shows.
_SIZE = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}


def _split(text: str) -> tuple[float, str] | None:
    m = _NUMBER_UNIT.match(text)
    if m is None:
        return None
    return float(m.group(1)), m.group(2).lower()


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `1.5m`, `500ms`, `1h`; must be above zero."""
    parts = _split(text)
    if parts is None or parts[1] not in _DURATION_S:
        raise ValueError(f"'{text}' is not a duration (write e.g. 90s, 5m, 1h or 500ms)")
    seconds = parts[0] * _DURATION_S[parts[1]]
    if seconds <= 0:
        raise ValueError(f"'{text}' is not above zero (write e.g. 90s)")
    return seconds


def parse_age(text: str) -> float:
    """Seconds from `30d`, `12h`, `2w`, `3600`."""
    parts = _split(text)
    if parts is None or parts[1] not in _AGE_S:
        raise ValueError(f"'{text}' is not an age (write e.g. 30d, 12h or 90m)")
    return parts[0] * _AGE_S[parts[1]]


def parse_size(text: str) -> int:
    """Bytes from `5GB`, `500MB`, `10KiB`, `1024` (K/M/G/T are binary multiples)."""
    parts = _split(text)
    if parts is None or parts[1] not in _SIZE:
        raise ValueError(f"'{text}' is not a size (write e.g. 5GB, 500MB or 1024)")
    return int(parts[0] * _SIZE[parts[1]])


def format_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
