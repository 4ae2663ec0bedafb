"""Imported first by ``bench/archive.py``, whose file name shadows the ``archive`` package.

``python bench/archive.py`` puts ``bench/`` first on the import path, where ``archive`` would be
the script itself; dropping that entry makes ``import archive`` find the package.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
