"""build_spec/orphans.py on real shared libraries compiled here: a system library that only a
dropped plugin linked goes, with what only it linked; one still linked stays; a wheel's own and
Python's stay whatever links them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "build_spec"))
import orphans  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("cc") is None
                                or shutil.which("readelf") is None, reason="ELF libraries, cc and readelf")


def library(folder: Path, name: str, links: tuple[str, ...] = (), search: Path | None = None) -> str:
    """A real shared library named name (its soname too) linking the given ones from search (or folder)."""
    source = folder / f"{name}.c"
    source.write_text(f"int f_{name.replace('.', '_').replace('-', '_')}(void) {{ return 1; }}\n")
    out = folder / name
    args = ["cc", "-shared", "-fPIC", "-o", str(out), str(source), f"-Wl,-soname,{name}", f"-L{search or folder}",
            "-Wl,--no-as-needed"] + [f"-l:{dep}" for dep in links]
    subprocess.run(args, check=True, capture_output=True)
    return str(out)


def test_what_only_a_dropped_plugin_linked_goes(tmp_path, monkeypatch):
    system = tmp_path / "usr" / "lib"
    system.mkdir(parents=True)
    monkeypatch.setattr(orphans, "SYSTEM_DIRS", (str(system) + "/",))
    pixman = library(system, "libpixman.so.0")
    cairo = library(system, "libcairo.so.2", ("libpixman.so.0",))
    glib = library(system, "libglib.so.0")
    qtcore = library(system, "libQtCore.so.6", ("libglib.so.0",))
    wheel_lib = library(tmp_path, "libheif-1234.so.1")  # a wheel's vendored library: not the system's
    loaded_by_name = library(system, "libunlinked.so.1")
    entries = [("libpixman.so.0", pixman, "BINARY"), ("libcairo.so.2", cairo, "BINARY"),
               ("libglib.so.0", glib, "BINARY"), ("PySide6/Qt/lib/libQtCore.so.6", qtcore, "BINARY"),
               ("pi_heif.libs/libheif-1234.so.1", wheel_lib, "BINARY"),
               ("PySide6/Qt/plugins/libunlinked.so.1", loaded_by_name, "BINARY")]

    kept, dropped = orphans.drop_orphans(entries)
    assert sorted(dropped) == ["libcairo.so.2", "libpixman.so.0"]  # cairo first, then what only it linked
    assert [e[0] for e in kept] == ["libglib.so.0", "PySide6/Qt/lib/libQtCore.so.6",
                                    "pi_heif.libs/libheif-1234.so.1", "PySide6/Qt/plugins/libunlinked.so.1"]


def test_nothing_goes_when_everything_is_linked(tmp_path, monkeypatch):
    system = tmp_path / "lib"
    system.mkdir()
    monkeypatch.setattr(orphans, "SYSTEM_DIRS", (str(system) + "/",))
    dep = library(system, "libdep.so.1")
    user = library(tmp_path, "_module.so", ("libdep.so.1",), search=system)
    python = library(system, "libpython3.11.so.1.0")  # loaded by name by the bootloader; nothing links it
    entries = [("libdep.so.1", dep, "BINARY"), ("_module.so", user, "EXTENSION"),
               ("libpython3.11.so.1.0", python, "BINARY")]
    assert orphans.drop_orphans(entries) == (entries, [])
