"""Where shipped resources, the default model and per-user caches live.

The same code runs from a source checkout, an installed wheel and a PyInstaller
folder (where data files sit under ``sys._MEIPASS``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resource_root() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen)
    return Path(__file__).resolve().parents[2]


def default_bundle_dir() -> Path:
    override = os.environ.get("IMGCAP_DEFAULT_MODEL")
    return Path(override) if override else resource_root() / "models" / "default"


def user_cache_dir() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "imgcap-desktop"
