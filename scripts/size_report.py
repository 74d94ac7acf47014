"""What each size step of the packaged app saved, measured on this build (scripts/check_frozen.sh
prints it): the files in dist/imgcap-desktop/_internal against the same files as the packaging
venv installed them.

    .venv/bin/python scripts/size_report.py [dist/imgcap-desktop] [.venv-package]

- Qt's ICU data: the trimmed libicudata (build_spec/trim_icu.py) against PySide6's own;
- stripping: every library under _internal/*.libs/ against the wheel's copy;
- HEIC: pi-heif as packaged against pillow-heif (with its x265 encoder) as the development venv
  has it, when it does (the tests' HEIC encoder);
- what the spec left out and the system libraries only that linked, as the spec measured them
  while building (build/imgcap-desktop/size-steps.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIB = 1024 * 1024


def site_packages(venv: Path) -> Path | None:
    found = sorted(venv.glob("lib/python3*/site-packages")) + sorted(venv.glob("Lib/site-packages"))
    return found[0] if found else None


def folder_bytes(*folders: Path) -> int:
    return sum(p.stat().st_size for f in folders if f.is_dir()
               for p in f.rglob("*") if p.is_file() and not p.is_symlink())


def icu_saving(internal: Path, site: Path) -> tuple[int, int] | None:
    packaged = sorted((internal / "PySide6" / "Qt" / "lib").glob("libicudata.so.*"))
    if not packaged:
        return None
    original = site / "PySide6" / "Qt" / "lib" / packaged[0].name
    return (original.stat().st_size, packaged[0].stat().st_size) if original.is_file() else None


def strip_saving(internal: Path, site: Path) -> tuple[int, int]:
    before = after = 0
    for lib in internal.glob("*.libs/*"):
        original = site / lib.parent.name / lib.name
        if lib.is_file() and not lib.is_symlink() and original.is_file():
            before += original.stat().st_size
            after += lib.stat().st_size
    return before, after


def heic_saving(internal: Path, dev_site: Path | None) -> tuple[int, int] | None:
    if dev_site is None or not (dev_site / "pillow_heif").is_dir():
        return None
    return (folder_bytes(dev_site / "pillow_heif", dev_site / "pillow_heif.libs"),
            folder_bytes(internal / "pi_heif", internal / "pi_heif.libs"))


def spec_steps(steps_file: Path) -> list[str]:
    try:
        steps = json.loads(steps_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [f"what the spec left out: not measured here ({steps_file} is missing)"]
    return [f"{label}: saved {size / MIB:.1f} MiB" for label, size in steps.items() if isinstance(size, int)]


def report(app: Path, package_venv: Path, dev_venv: Path, steps_file: Path | None = None) -> list[str]:
    internal = app / "_internal"
    site = site_packages(package_venv)
    if site is None or not internal.is_dir():
        return [f"no size report: {internal} or the packaging venv {package_venv} is missing"]
    lines = []
    for label, sizes in (("Qt's ICU data trimmed (build_spec/trim_icu.py)", icu_saving(internal, site)),
                         ("wheels' vendored libraries stripped", strip_saving(internal, site)),
                         ("HEIC through pi-heif, not pillow-heif with x265",
                          heic_saving(internal, site_packages(dev_venv)))):
        if sizes is None:
            lines.append(f"{label}: not measured here")
        else:
            before, after = sizes
            lines.append(f"{label}: {before / MIB:.1f} -> {after / MIB:.1f} MiB (saved {(before - after) / MIB:.1f})")
    return lines + (spec_steps(steps_file) if steps_file is not None else [])


if __name__ == "__main__":
    args = sys.argv[1:]
    app = Path(args[0]) if args else Path("dist/imgcap-desktop")
    package_venv = Path(args[1]) if len(args) > 1 else Path(".venv-package")
    print("\n".join(report(app, package_venv, Path(".venv"), Path("build/imgcap-desktop/size-steps.json"))))
