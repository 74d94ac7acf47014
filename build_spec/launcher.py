"""Entry script of the packaged app (PyInstaller): ``imgcap-desktop [--self-test] [PHOTO ...]``.

``--self-test`` is dispatched before Qt is imported, so it needs no display and
answers fast; everything else goes to the GUI's own ``main``.
"""

from __future__ import annotations

import sys


def main() -> int:
    argv = sys.argv[1:]
    if "--self-test" in argv:
        from imgcap_desktop import selftest

        return selftest.run(argv)
    from imgcap_desktop.gui.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    # Camera RAW is decoded in a spawned worker process (core.raw_photos): in a frozen app the
    # child is this executable again, and freeze_support makes it the worker instead of the app.
    import multiprocessing

    multiprocessing.freeze_support()
    raise SystemExit(main())
