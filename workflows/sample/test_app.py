"""Tests for app.py, split into a unit and an integration part."""

from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import app

kind = sys.argv[1] if len(sys.argv) > 1 else "unit"
if kind == "unit":
    assert app.add(1, 2) == 3
    print("unit tests passed")
else:
    out = subprocess.run(
        [sys.executable, app.__file__, "--version"], capture_output=True, text=True
    )
    assert out.stdout.strip() == app.VERSION
    print("integration tests passed")
