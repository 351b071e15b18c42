"""Materialising an ActionResult into the workspace, from any ContentStore: every byte verified
against its digest while it is written (to a temp file beside its target, then `os.replace`d),
never a hard link, never through a link or folder leading out of the workspace; what the step's
output patterns match is left exactly as the entry names it (files of another state and temp
files of a restore killed midway removed, the entry's empty folders made). Every tier shares it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import xxhash

from dagmake import faults, globs
from dagmake.cache.base import ActionResult, CacheCorrupt, ContentStore, OutputFile, check_relative
from dagmake.globs import RESTORE_TEMP_PREFIX, RESTORE_TEMP_SUFFIX

_CHUNK = 1 << 20


class Blocked(Exception):
    """The workspace, not the entry, stops a restore (a folder in the way, a folder leading
    out of the workspace); the message says what."""


def restore_into(
    entry: ActionResult, workspace: Path, declared: Sequence[str], store: ContentStore
) -> None:
    """Copy every output of `entry` into `workspace` from `store` (see the module docstring).
    Raises CacheCorrupt when the entry's contents are missing or do not match (a blob that
    does not match is removed from `store`), Blocked, OSError or ValueError when the
    workspace is in the way."""
    real_root = os.path.realpath(workspace)
    for pattern in declared:  # a link planted where an output goes is replaced, never
        top = globs.literal_prefix(pattern) if globs.is_glob(pattern) else pattern
        full = os.path.join(real_root, top)  # followed (RELIABILITY 6)
        if top and os.path.islink(full) and not _inside(real_root, os.path.realpath(full)):
            _remove_inside(real_root, top)
    leftovers: list[str] = []
    present = globs.expand(declared, workspace, leftovers) if declared else []
    named = {o.path for o in entry.outputs}
    # first, so that a file of another state where the entry has a folder (or a folder
    # of files where it has a file) is out of the way
    removed = [*leftovers, *(rel for rel in present if rel not in named)]
    for rel in removed:  # what a restore killed midway left, and files of another state
        _remove_inside(real_root, rel)
    _remove_emptied(real_root, removed, declared)
    for out in entry.outputs:
        target = _prepare_target(real_root, out.path)
        if out.link is not None:
            if not link_stays_inside(real_root, out.path, out.link):
                raise Blocked(f"symlink {out.path} would lead outside the workspace")
            _place_symlink(target, out.link)
        elif out.digest in entry.inline:  # checked when the manifest was read
            data = entry.inline[out.digest]
            if not _write_verified((data,), target, out.digest, out.mode, out.path):
                raise CacheCorrupt(f"stored file {out.digest[:12]} does not match")
        else:
            _copy_verified(store, target, out)
    for folder in entry.folders:  # empty in the entry's state (no file makes them)
        _make_folder(real_root, folder)


def _copy_verified(store: ContentStore, target: str, out: OutputFile) -> None:
    """Copy a blob to `target` by `_write_verified`; a blob that does not match its digest
    is removed. Never a hard link: editing the restored file must not touch the cache."""
    src = store.read(out.content)  # CacheCorrupt when it is not there
    with src:
        chunks = iter(lambda: src.read(_CHUNK), b"")
        if not _write_verified(chunks, target, out.digest, out.mode, out.path):
            store.remove(out.content)
            raise CacheCorrupt(f"stored file {out.digest[:12]} does not match its digest")


def _write_verified(chunks: Iterable[bytes], target: str, digest: str, mode: int, rel: str) -> bool:
    """Hash the bytes while writing them to a temp file beside `target`, then replace it; False
    (and nothing written) when they do not match `digest`."""
    if os.path.isdir(target) and not os.path.islink(target):
        raise Blocked(f"{rel} is a folder where a file should be")
    fd, tmp = _restore_temp(target)
    try:
        with os.fdopen(fd, "wb") as dst:
            h = xxhash.xxh3_128()
            for chunk in chunks:
                h.update(chunk)
                dst.write(chunk)
            os.fchmod(dst.fileno(), mode & 0o7777)
        if h.hexdigest() != digest:
            os.unlink(tmp)
            return False
        faults.check("cache.restore.write")
        faults.check("cache.restore.write." + rel)
        os.replace(tmp, target)  # replaces a symlink at `target` instead of following it
        return True
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _restore_temp(target: str) -> tuple[int, str]:
    """A new temp file beside `target` (0600), open for writing (see `_restore_temp_name`)."""
    tmp = _restore_temp_name(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    return os.open(tmp, flags, 0o600), tmp


def _restore_temp_name(target: str) -> str:
    """The temp name beside `target`, named after it, and free: a copy that a kill -9 cut short
    is replaced by the next restore of the same file, and every restore removes the ones in
    the folders it owns (`globs` never matches that name)."""
    folder, name = os.path.split(target)
    tag = xxhash.xxh3_64_hexdigest(name.encode("utf-8", "surrogateescape"))
    tmp = os.path.join(folder, f"{RESTORE_TEMP_PREFIX}{tag}{RESTORE_TEMP_SUFFIX}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    return tmp


def _inside(real_root: str, real: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def link_text_stays_inside(rel: str, link: str) -> bool:
    """Lexically: `link`, read from `rel`'s folder, names something inside the workspace."""
    if not link or "\0" in link or link.startswith("/"):
        return False
    where = os.path.normpath(os.path.join(os.path.dirname(rel), link))
    return where != ".." and not where.startswith("../")


def link_stays_inside(real_root: str, rel: str, link: str) -> bool:
    """Lexically and after resolving the symlinks on disk today."""
    if not link_text_stays_inside(rel, link):
        return False
    where = os.path.join(real_root, os.path.dirname(rel), link)
    return _inside(real_root, os.path.realpath(where))


def _prepare_target(real_root: str, rel: str) -> str:
    """The absolute target for `rel`, with its folder created. Refuses when a folder on the
    way is a symlink leading out of the workspace (checked before and after creating)."""
    check_relative(rel)
    target = os.path.join(real_root, rel)
    parent = os.path.dirname(target)
    for attempt in range(2):
        if not _inside(real_root, os.path.realpath(parent)):
            raise Blocked(f"the folder of {rel} leads outside the workspace")
        if attempt == 0:
            os.makedirs(parent, exist_ok=True)
    return target


def _make_folder(real_root: str, rel: str) -> None:
    """Create the folder `rel` of the workspace (and those on its way), never through a folder
    that leads out of it (checked before and after creating)."""
    target = _prepare_target(real_root, rel)
    os.makedirs(target, exist_ok=True)
    if not _inside(real_root, os.path.realpath(target)):
        raise Blocked(f"the folder {rel} leads outside the workspace")


def empty_folders(workspace: Path, declared: Sequence[str]) -> list[str]:
    """The folders holding nothing at all below the step's literal folder outputs (the output
    itself, when empty): what a restore must make, since it writes no file there. Folder links
    are not followed (a link is no empty folder of the step's)."""
    found: list[str] = []
    root = str(workspace)
    for out in declared:
        if globs.is_glob(out):
            continue  # a glob output names files; it matched at least one
        top = os.path.join(root, out)
        if os.path.islink(top) or not os.path.isdir(top):
            continue
        for folder, subs, files in os.walk(top, onerror=None, followlinks=False):
            if not subs and not files:
                found.append(os.path.relpath(folder, root).replace(os.sep, "/"))
    return found


def _remove_inside(real_root: str, rel: str) -> None:
    """Remove the file `rel` of the workspace, unless its folder leads out of it."""
    full = os.path.join(real_root, rel)
    if not _inside(real_root, os.path.realpath(os.path.dirname(full))):
        raise Blocked(f"the folder of {rel} leads outside the workspace")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(full)


def _remove_emptied(real_root: str, removed: Sequence[str], declared: Sequence[str]) -> None:
    """Remove the folders that removing `removed` left empty, up to (not including) the folder
    each output pattern starts from: a folder output's own folder stays."""
    tops = {globs.literal_prefix(p) for p in declared}
    for rel in removed:
        folder = os.path.dirname(rel)
        while folder and folder not in tops:
            try:
                os.rmdir(os.path.join(real_root, folder))
            except OSError:  # not empty (or not ours to remove): nor is any folder above
                break
            folder = os.path.dirname(folder)


def _place_symlink(target: str, link: str) -> None:
    tmp = _restore_temp_name(target)
    os.symlink(link, tmp)
    try:
        os.replace(tmp, target)  # an existing file or symlink there is replaced, not followed
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
