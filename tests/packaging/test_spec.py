"""The PyInstaller spec and its launcher, checked without building anything."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "build_spec" / "imgcap-desktop.spec"
LAUNCHER = ROOT / "build_spec" / "launcher.py"


def spec_constants() -> dict[str, object]:
    """The spec's top-level list/tuple constants, read without running PyInstaller."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return found


def test_spec_parses_and_is_one_folder():
    source = SPEC.read_text(encoding="utf-8")
    tree = ast.parse(source)
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT"} <= calls  # COLLECT = one folder
    assert "exclude_binaries=True" in source
    assert 'name="imgcap-desktop"' in source
    assert "launcher.py" in source


def test_spec_ships_default_model_and_resources():
    source = SPEC.read_text(encoding="utf-8")
    assert 'tree(MODEL, "models/default")' in source
    assert 'tree(ROOT / "resources", "resources")' in source
    assert '"litert" / "litert.json"' in source  # refuses to build without the LiteRT export


def test_spec_excludes_what_the_app_does_not_use():
    c = spec_constants()
    excludes = set(c["EXCLUDES"])
    for name in ("tensorflow", "keras", "tensorboard", "torch", "matplotlib", "scipy",
                 "PySide6.QtWebEngineCore", "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtMultimedia",
                 "PySide6.QtCharts", "PySide6.QtPdf", "PySide6.QtNetwork", "PySide6.Qt3DCore",
                 "imgcap_desktop.core.training"):
        assert name in excludes, name
    drop = c["DROP"]
    assert "PySide6/Qt/translations/" in drop
    for needed in ("h5py", "numpy", "PIL", "PySide6.QtWidgets", "ai_edge_litert", "imgcap_desktop"):
        assert needed not in excludes
    assert "imgcap_desktop.core.captioner" in c["HIDDENIMPORTS"]  # the GUI worker imports it by name


def test_gui_uses_no_excluded_qt_module():
    excludes = {e for e in spec_constants()["EXCLUDES"] if e.startswith("PySide6.")}
    for path in (ROOT / "imgcap_desktop").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for module in excludes:
            assert f"from {module} import" not in text and f"import {module}" not in text, (path, module)


def test_launcher_self_test_runs_without_qt(tmp_path):
    """The launcher dispatches --self-test before Qt: with no model it fails cleanly and never imports PySide6."""
    env = dict(os.environ, IMGCAP_DEFAULT_MODEL=str(tmp_path / "none"), PYTHONPATH=str(ROOT))
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['imgcap-desktop', '--self-test']\n"
        "try:\n"
        f"    runpy.run_path({str(LAUNCHER)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not any(m.startswith('PySide6') for m in sys.modules), 'Qt imported'\n"
        "    raise\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "self-test: FAILED: cannot load the model" in done.stdout


def test_package_target_uses_the_spec():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "build_spec/imgcap-desktop.spec" in makefile
    assert "export-litert" in makefile


@pytest.mark.skipif(not (ROOT / "dist" / "imgcap-desktop" / "imgcap-desktop").exists(), reason="not built")
def test_built_folder_has_no_tensorflow():
    internal = ROOT / "dist" / "imgcap-desktop" / "_internal"
    assert not (internal / "tensorflow").exists()
    assert not (internal / "keras").exists()
    assert (internal / "models" / "default" / "litert" / "litert.json").is_file()
