"""Digests as a type (algorithm, hex, size) and the one action key. xxh3-128 serves local change
detection (file stamps, the local blob store); SHA-256 names anything that may leave the
machine: the action key a result is cached under (RELIABILITY 11).

The action key is the same on every machine for the same work: the command as the shell gets
it (real values substituted), the declared environment with its values, the working folder
relative to the workspace, each input's workspace-relative path and SHA-256 content digest,
each dependency's produced digest (SHA-256 over its outputs' SHA-256 digests and its values,
`keying`) and the declared output patterns; for a step with `tools:`, `depfile:` or
`pass_env:`, each tool's SHA-256, each discovered input's path and SHA-256 (the record's before
a run, the run's own depfile's when it is stored) and the passed values. No xxh3 digest is in
a key: xxh3 collisions can be made, and a key shared by two contents hands one's result to
the other.
It holds no absolute path, no user, host or mtime, nothing of this machine's undeclared
environment and no per-cache secret.
The key is a SHA-256, so no value is in it in plain text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import xxhash

XXH3_128 = "xxh3-128"
SHA256 = "sha256"
ACTION_KEY_VERSION = 2  # bump when what the key covers, or how, changes (2: SHA-256 contents)
SHELL = "/bin/sh"


class Digest(NamedTuple):
    """A content digest: which algorithm, its lowercase hex, and the content's size."""

    algorithm: str
    hex: str
    size: int

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}/{self.size}"


def xxh3(data: bytes) -> Digest:
    return Digest(XXH3_128, xxhash.xxh3_128_hexdigest(data), len(data))


_SMALL = 1 << 16  # below this, CPython's own SHA-256 (loaded in 0.5 ms) beats loading OpenSSL


def sha256(data: bytes) -> Digest:
    """SHA-256: hashlib's (OpenSSL's, as fast as the machine allows) for large data; for a
    small one, such as a key document, CPython's built-in one, which is the same function
    without the 3-4 ms (and 3.6 MB) of loading OpenSSL into a run that decides one step."""
    return Digest(SHA256, _sha256_hex(data), len(data))


def _sha256_hex(data: bytes) -> str:
    if len(data) < _SMALL:
        builtin = _builtin_sha256()
        if builtin is not None:
            return str(builtin(data).hexdigest())
    import hashlib

    return hashlib.sha256(data).hexdigest()


def small_sha256() -> Any:
    """The SHA-256 constructor for data under 64 KiB (the built-in one when there is one)."""
    builtin = _builtin_sha256()
    if builtin is not None:
        return builtin
    import hashlib

    return hashlib.sha256


def sha256_hasher(size: int) -> Any:
    """A SHA-256 object for content of about `size` bytes (the built-in one when small, as
    `sha256`)."""
    if size < _SMALL:
        builtin = _builtin_sha256()
        if builtin is not None:
            return builtin()
    import hashlib

    return hashlib.sha256()


def _builtin_sha256() -> Any:
    """CPython's own sha256 constructor (`_sha256` to 3.11, `_sha2` after), or None."""
    for name in ("_sha256", "_sha2"):
        try:
            return __import__(name).sha256
        except (ImportError, AttributeError):
            continue
    return None


def of_xxh3(hex_digest: str, size: int) -> Digest:
    """The Digest of a content known by its xxh3-128 hex (a stamp, a stored output)."""
    return Digest(XXH3_128, hex_digest, size)


def action_key(
    *,
    command: str,
    env: Mapping[str, str],
    cwd: str,
    inputs: Iterable[tuple[str, str]],
    deps: Iterable[tuple[str, str]],
    outputs: Sequence[str],
    tools: Iterable[tuple[str, str]] = (),
    discovered: Iterable[tuple[str, str]] | None = None,
    passed: Mapping[str, str | None] | None = None,
    content: str = SHA256,
) -> str:
    """The SHA-256 (hex) of the canonical, versioned serialisation of one step's work.

    `command`: the script as the shell gets it; `env`: the declared variables with their real
    values; `cwd`: relative to the workspace (`""`: its root); `inputs`: (workspace-relative
    path, content digest); `deps`: (step id, digest of what it produced); `outputs`: the
    declared patterns; `tools`: (name, content digest of the executable), for `tools:`;
    `discovered`: for a step with a `depfile:`, (workspace-relative path, content digest) of
    each input its dependency file listed (None: the step has no depfile; an empty list is a
    depfile step that read nothing more); `passed`: the `pass_env:` variables with their real
    values (None: unset), as `env`; `content`: the algorithm of the content digests (SHA-256:
    the key must not be shared by two contents, and xxh3 collisions can be made).

    The last two fields are in the document only when used, so the keys of steps without
    them are what they were."""
    doc: dict[str, object] = {
        "v": ACTION_KEY_VERSION,
        "shell": SHELL,
        "content": content,
        "command": command,
        "env": sorted(env.items()),
        "cwd": cwd,
        "inputs": sorted(inputs),
        "deps": sorted(deps),
        "outputs": list(outputs),
        "tools": sorted(tools),
    }
    if discovered is not None:
        doc["discovered"] = sorted(discovered)
    if passed:
        doc["passed"] = sorted(passed.items())
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return sha256(text.encode("ascii")).hex
