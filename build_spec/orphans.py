"""System libraries that nothing left in the packaged app needs.

PyInstaller copies a plugin together with every shared library it links, from the build
machine's /lib and /usr/lib. When the spec then leaves a plugin out (its DROP list), those
libraries stay behind unless something else links them. Qt's GTK 3 platform theme is the case
that matters: it links GTK, which the build machine need not have, so PyInstaller copied the
build machine's cairo, pango, gdk-pixbuf, ATK and GIO but not GTK itself, and on a user's GNOME
the plugin would load the user's GTK against those. That mix is a known source of crashes in
packaged Qt apps (the AppImage tools stopped shipping the plugin for it), so the spec leaves it
out and this removes what only it needed: Qt then uses its built-in GNOME theme (Fusion, the
desktop's dark or light colour scheme read over D-Bus, Qt's own file dialog).

Only libraries copied from the system's library folders into the top folder are candidates:
the wheels' own (``*.libs/``), plugins, and Python's own library (which the bootloader loads by
name, so nothing links it, and which a Debian Python keeps in /usr/lib) stay.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import PurePosixPath

SYSTEM_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/")
_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")


def needed(path: str, cache: dict[str, frozenset[str]]) -> frozenset[str]:
    """The sonames an ELF file links (its DT_NEEDED entries); empty for anything readelf can't read."""
    if path not in cache:
        done = subprocess.run(["readelf", "-d", "-W", path], capture_output=True, text=True)
        cache[path] = frozenset(_NEEDED.findall(done.stdout)) if done.returncode == 0 else frozenset()
    return cache[path]


def _candidate(entry: tuple) -> bool:
    destination = str(entry[0]).replace("\\", "/")
    return ("/" not in destination and str(entry[1]).startswith(SYSTEM_DIRS)
            and not destination.startswith("libpython"))


def drop_orphans(entries: Iterable[tuple]) -> tuple[list[tuple], list[str]]:
    """(kept entries, names dropped): PyInstaller TOC entries (destination, source, kind) less the
    system libraries in the top folder that no other kept entry links. Each Analysis lists every
    library its own binaries link, so each is pruned on its own. Repeats until nothing changes,
    since dropping cairo can orphan pixman."""
    kept = list(entries)
    if not sys.platform.startswith("linux") or shutil.which("readelf") is None:
        return kept, []  # macOS and Windows builds take no libraries from the system's folders
    cache: dict[str, frozenset[str]] = {}
    dropped: list[str] = []
    while True:
        wanted = set().union(*(needed(str(e[1]), cache) for e in kept if e[1]))
        orphans = [e for e in kept if _candidate(e) and PurePosixPath(str(e[0])).name not in wanted]
        if not orphans:
            return kept, dropped
        dropped += [str(e[0]) for e in orphans]
        kept = [e for e in kept if e not in orphans]
