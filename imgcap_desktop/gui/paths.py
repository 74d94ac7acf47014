"""Where the GUI finds its resources and keeps its cache, frozen or not."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QStandardPaths


def resources_root() -> Path:
    # PyInstaller unpacks data files under sys._MEIPASS; a source checkout keeps them
    # beside the package, two levels above this file.
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    return resources_root().joinpath(*parts)


def cache_dir(*parts: str) -> Path:
    """A per-user cache folder (created on demand), e.g. for pasted images."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    root = Path(base) if base else Path.home() / ".cache" / "imgcap-desktop"
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def data_dir(*parts: str) -> Path:
    """The per-user data folder (created on demand): the saved session lives here."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    root = Path(base) if base else Path.home() / ".local" / "share" / "imgcap-desktop"
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
