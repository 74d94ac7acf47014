"""scripts/size_report.py: the savings check_frozen.sh prints, on a packaged folder and venvs laid
out as PyInstaller and pip lay them out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("size_report", ROOT / "scripts" / "size_report.py")
size_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(size_report)


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)


def test_each_step_is_measured_against_the_wheels_as_installed(tmp_path):
    mib = 1024 * 1024
    site = tmp_path / "venv-package" / "lib" / "python3.11" / "site-packages"
    dev = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    internal = tmp_path / "app" / "_internal"
    write(site / "PySide6/Qt/lib/libicudata.so.73", 30 * mib)
    write(internal / "PySide6/Qt/lib/libicudata.so.73", 6 * mib)
    write(site / "exiv2.libs/libexiv2-1.so", 5 * mib)
    write(internal / "exiv2.libs/libexiv2-1.so", 4 * mib)
    write(internal / "exiv2.libs/only-here.so", 9 * mib)  # no wheel copy: not counted
    write(dev / "pillow_heif.libs/libx265.so", 22 * mib)
    write(dev / "pillow_heif/heif.py", mib)
    write(internal / "pi_heif.libs/libheif.so", 3 * mib)

    steps = tmp_path / "size-steps.json"
    steps.write_text('{"Qt parts left out": 3145728, "their libraries": 1048576}')
    lines = size_report.report(tmp_path / "app", tmp_path / "venv-package", tmp_path / "venv", steps)
    assert lines == [
        "Qt's ICU data trimmed (build_spec/trim_icu.py): 30.0 -> 6.0 MiB (saved 24.0)",
        "wheels' vendored libraries stripped: 5.0 -> 4.0 MiB (saved 1.0)",
        "HEIC through pi-heif, not pillow-heif with x265: 23.0 -> 3.0 MiB (saved 20.0)",
        "Qt parts left out: saved 3.0 MiB",
        "their libraries: saved 1.0 MiB",
    ]
    assert size_report.report(tmp_path / "app", tmp_path / "venv-package", tmp_path / "venv",
                              tmp_path / "none.json")[-1].endswith("is missing)")


def test_a_missing_build_or_venv_is_said(tmp_path):
    (tmp_path / "app" / "_internal").mkdir(parents=True)
    lines = size_report.report(tmp_path / "app", tmp_path / "nowhere", tmp_path / "nowhere")
    assert len(lines) == 1 and "missing" in lines[0]
    site = tmp_path / "venv-package" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    lines = size_report.report(tmp_path / "app", tmp_path / "venv-package", tmp_path / "nowhere")
    assert lines[0].endswith("not measured here") and lines[2].endswith("not measured here")
