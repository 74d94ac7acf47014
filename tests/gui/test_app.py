"""Entry point arguments, resources and the desktop entry."""

import configparser
import sys
from pathlib import Path

from imgcap_desktop.gui import paths
from imgcap_desktop.gui.app import parse_args


def test_qt_options_are_not_taken_for_photos():
    args, qt = parse_args(["-platform", "xcb", "a.jpg", "--style=fusion", "folder", "--model", "/m"])
    assert args.paths == [Path("a.jpg"), Path("folder")]
    assert args.model == "/m"
    assert qt == ["-platform", "xcb", "--style=fusion"]


def test_self_test_flag_is_accepted():
    args, _ = parse_args(["--self-test"])
    assert args.self_test and args.paths == []


def test_process_age_counts_from_the_start_of_the_process_not_the_import():
    import subprocess

    script = ("import time; time.sleep(1.0)\n"
              "from imgcap_desktop.gui.app import process_age; print(process_age())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) >= 1.0


def test_resources_found_from_source_and_when_frozen(tmp_path, monkeypatch):
    assert paths.resource_path("icons", "imgcap.svg").is_file()
    assert paths.resource_path("icons", "imgcap-256.png").is_file()
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.resource_path("icons", "imgcap.svg") == tmp_path / "resources" / "icons" / "imgcap.svg"


def test_application_icon_loads(qtbot):
    from imgcap_desktop.gui.main_window import app_icon

    icon = app_icon()
    assert not icon.isNull()
    assert not icon.pixmap(64, 64).isNull()


def test_desktop_entry():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(paths.resource_path("imgcap-desktop.desktop"), encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Exec"] == "imgcap-desktop %F"
    assert section["Icon"] == "imgcap"
    assert section["Categories"] == "Graphics;Utility;"
    assert "image/jpeg" in section["MimeType"] and "image/png" in section["MimeType"]
