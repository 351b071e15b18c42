"""Build a wheel or an sdist of `mini` without network or build backend, byte for byte the same
each time (fixed timestamps), so dagmake finds the same outputs and dependents stay up to date.

    python3 tools/build_dist.py wheel|sdist VERSION OUTDIR
"""

from __future__ import annotations

import gzip
import io
import sys
import tarfile
import zipfile
from pathlib import Path

kind, version, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
sources = sorted(p for p in Path("src").rglob("*.py"))
metadata = f"Metadata-Version: 2.1\nName: mini\nVersion: {version}\n"
if kind == "wheel":
    info = f"mini-{version}.dist-info"
    wheel = "Wheel-Version: 1.0\nGenerator: build_dist\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files = {str(p.relative_to("src")): p.read_bytes() for p in sources}
    files[f"{info}/METADATA"] = metadata.encode()
    files[f"{info}/WHEEL"] = wheel.encode()
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in [*files, f"{info}/RECORD"]).encode()
    with zipfile.ZipFile(out / f"mini-{version}-py3-none-any.whl", "w") as whl:
        for name, data in files.items():
            whl.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
elif kind == "sdist":
    top = f"mini-{version}"
    files = {f"{top}/{p}": p.read_bytes() for p in [Path("pyproject.toml"), *sources]}
    files[f"{top}/PKG-INFO"] = metadata.encode()
    with (
        open(out / f"{top}.tar.gz", "wb") as raw,
        gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, data in files.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
else:
    sys.exit(f"unknown kind {kind!r}: wheel or sdist")
