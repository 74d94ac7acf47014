"""Entry point of the desktop app: `imgcap-desktop [PHOTO|FOLDER ...]`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

_IMPORTED_AT = time.monotonic()

# Qt's own options that take a value: peeled off before argparse, which would
# otherwise read the value ("xcb" in "-platform xcb") as a photo path.
_QT_OPTIONS_WITH_VALUE = {
    "-platform", "-platformpluginpath", "-platformtheme", "-plugin", "-qmljsdebugger",
    "-qwindowgeometry", "-geometry", "-qwindowicon", "-qwindowtitle", "-title",
    "-style", "-stylesheet", "-display", "-session", "-name", "-widgetcount",
}


def process_age() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere: since import)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5), counted after "(comm)"
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic() - _IMPORTED_AT


_OUR_OPTIONS_WITH_VALUE = {"--model"}
_OUR_FLAGS = {"--self-test", "-h", "--help"}


def split_qt_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our arguments and Qt's (any other option, with its value where Qt takes one)."""
    ours, qt = [], []
    items = iter(argv)
    for arg in items:
        name = arg.split("=", 1)[0]
        if name in _OUR_OPTIONS_WITH_VALUE:
            ours.append(arg)
            if "=" not in arg:
                value = next(items, None)
                if value is not None:
                    ours.append(value)
        elif name in _OUR_FLAGS or not arg.startswith("-") or arg == "-":
            ours.append(arg)
        else:
            qt.append(arg)
            if arg in _QT_OPTIONS_WITH_VALUE:
                value = next(items, None)
                if value is not None:
                    qt.append(value)
    return ours, qt


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    ours, qt = split_qt_args(argv)
    parser = argparse.ArgumentParser(prog="imgcap-desktop", description="Caption photos offline.")
    parser.add_argument("paths", nargs="*", type=Path, help="photos or folders to queue")
    parser.add_argument("--model", default=None, help="model bundle or seed folder for this session")
    parser.add_argument("--self-test", action="store_true",
                        help="caption the bundled sample photos without a window; exit 0 if all worked")
    return parser.parse_args(ours), qt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, qt_args = parse_args(argv)
    if args.self_test:
        from imgcap_desktop import selftest

        return selftest.run(argv)

    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow, app_icon
    from .settings import APPLICATION, ORGANIZATION

    QApplication.setOrganizationName(ORGANIZATION)
    QApplication.setApplicationName(APPLICATION)
    QApplication.setApplicationDisplayName("Image Caption")
    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setWindowIcon(app_icon())
    app.setDesktopFileName("imgcap-desktop")

    window = MainWindow(load_on_start=args.model is None)
    if os.environ.get("IMGCAP_STARTUP_TIMING"):
        window.shown.connect(
            lambda: print(f"imgcap-desktop: window shown {process_age():.3f} s after process start", file=sys.stderr, flush=True)
        )
        # The first moment a caption can be made: the model is loaded in the worker.
        window.session.model_ready.connect(
            lambda name: print(f"imgcap-desktop: model ready {process_age():.3f} s after process start",
                               file=sys.stderr, flush=True)
        )
    window.show()
    if args.model is not None:
        window.load_model(str(args.model))
    if args.paths:
        window.add_paths(args.paths)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
