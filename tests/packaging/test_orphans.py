"""build_spec/orphans.py on real shared libraries compiled here: a system library that only a
dropped plugin linked goes, with what only it linked; one still linked stays; a wheel's own,
Python's, and one loaded by name (linked by nothing) stay."""

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


@pytest.fixture()
def system(tmp_path, monkeypatch):
    folder = tmp_path / "usr" / "lib"
    folder.mkdir(parents=True)
    monkeypatch.setattr(orphans, "SYSTEM_DIRS", (str(folder) + "/",))
    return folder


def test_what_only_a_dropped_plugin_linked_goes(tmp_path, system):
    pixman = library(system, "libpixman.so.0")
    cairo = library(system, "libcairo.so.2", ("libpixman.so.0",))
    glib = library(system, "libglib.so.0")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    gtk_theme = library(plugins, "libqgtk3.so", ("libcairo.so.2", "libglib.so.0"), search=system)
    qtcore = library(system, "libQtCore.so.6", ("libglib.so.0",))
    wheel_lib = library(tmp_path, "libheif-1234.so.1")  # a wheel's vendored library: not the system's
    loaded_by_name = library(system, "libloaded.so.1")  # dlopen()ed at run time: nothing links it
    python = library(system, "libpython3.11.so.1.0")  # the bootloader loads it by name
    entries = [("libpixman.so.0", pixman, "BINARY"), ("libcairo.so.2", cairo, "BINARY"),
               ("libglib.so.0", glib, "BINARY"), ("PySide6/Qt/lib/libQtCore.so.6", qtcore, "BINARY"),
               ("pi_heif.libs/libheif-1234.so.1", wheel_lib, "BINARY"),
               ("libloaded.so.1", loaded_by_name, "BINARY"), ("libpython3.11.so.1.0", python, "BINARY")]
    dropped = [("PySide6/Qt/plugins/platformthemes/libqgtk3.so", gtk_theme, "BINARY")]

    kept, removed = orphans.drop_orphans(entries, dropped)
    assert sorted(removed) == ["libcairo.so.2", "libpixman.so.0"]  # cairo, then what only it linked
    assert [e[0] for e in kept] == ["libglib.so.0", "PySide6/Qt/lib/libQtCore.so.6",
                                    "pi_heif.libs/libheif-1234.so.1", "libloaded.so.1", "libpython3.11.so.1.0"]


def test_nothing_goes_when_nothing_was_dropped_or_everything_is_still_linked(tmp_path, system):
    dep = library(system, "libdep.so.1")
    user = library(tmp_path, "_module.so", ("libdep.so.1",), search=system)
    plugin = library(tmp_path, "libplugin.so", ("libdep.so.1",), search=system)
    entries = [("libdep.so.1", dep, "BINARY"), ("_module.so", user, "EXTENSION")]
    assert orphans.drop_orphans(entries, []) == (entries, [])
    assert orphans.drop_orphans(entries, [("plugins/libplugin.so", plugin, "BINARY")]) == (entries, [])
