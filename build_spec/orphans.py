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

Only libraries that a dropped entry linked, directly or through others, and that PyInstaller
copied from the system's library folders into the top folder are candidates: the wheels' own
(``*.libs/``), plugins, anything loaded by name at run time (which nothing links) and Python's
own library (which a Debian Python keeps in /usr/lib) stay.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import PurePosixPath

SYSTEM_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/")
_NEEDED = re.compile(r"\(NEEDED\).*\[([^\]]+)\]")
# binutils' messages are translated; the pattern reads the C locale's.
_C_LOCALE = {**os.environ, "LC_ALL": "C", "LANGUAGE": ""}


def needed(path: str, cache: dict[str, frozenset[str]]) -> frozenset[str]:
    """The sonames an ELF file links (its DT_NEEDED entries); empty for anything readelf can't read."""
    if path not in cache:
        done = subprocess.run(["readelf", "-d", "-W", path], capture_output=True, text=True, env=_C_LOCALE)
        cache[path] = frozenset(_NEEDED.findall(done.stdout)) if done.returncode == 0 else frozenset()
    return cache[path]


def _name(entry: tuple) -> str:
    return PurePosixPath(str(entry[0]).replace("\\", "/")).name


def _candidate(entry: tuple) -> bool:
    destination = str(entry[0]).replace("\\", "/")
    return ("/" not in destination and str(entry[1]).startswith(SYSTEM_DIRS)
            and not destination.startswith("libpython"))


def drop_orphans(entries: Iterable[tuple], dropped: Iterable[tuple]) -> tuple[list[tuple], list[str]]:
    """(kept entries, names removed): the PyInstaller TOC entries (destination, source, kind) that
    stay after ``dropped`` were left out, less the system libraries in the top folder that a
    dropped entry linked, directly or through others, and that no kept entry links. Only what the
    dropped plugins brought in is a candidate, so a library loaded by name at run time (which
    nothing links) is never removed. Each Analysis lists every library its own binaries link, so
    each is pruned on its own."""
    kept = list(entries)
    dropped = list(dropped)
    if not dropped or not sys.platform.startswith("linux") or shutil.which("readelf") is None:
        return kept, []  # macOS and Windows builds take no libraries from the system's folders
    cache: dict[str, frozenset[str]] = {}
    if not any(needed(str(e[1]), cache) for e in kept if e[1]):
        return kept, []  # readelf read nothing: remove nothing rather than everything
    by_name = {_name(e): e for e in kept if _candidate(e)}
    # What the dropped entries linked, followed through the libraries that were bundled for them.
    reach: set[str] = set()
    frontier = set().union(*(needed(str(e[1]), cache) for e in dropped if e[1]))
    while frontier:
        reach |= frontier
        frontier = set().union(*(needed(str(by_name[n][1]), cache) for n in frontier if n in by_name)) - reach
    removed: list[str] = []
    while True:
        wanted = set().union(*(needed(str(e[1]), cache) for e in kept if e[1]))
        orphans = [e for e in kept if _candidate(e) and _name(e) in reach and _name(e) not in wanted]
        if not orphans:
            return kept, removed
        removed += [str(e[0]) for e in orphans]
        kept = [e for e in kept if e not in orphans]
