"""A second process with a real CaptionSession, for the kill and two-instance tests.

usage: python session_child.py FOLDER MODE PHOTO...

- ``edit``: queue the photos, then edit their captions forever, printing the number of
  each edit after the session returned from it (the parent kills this process with SIGKILL);
- ``hold``: queue the photos, give the first one an edit, print "ready" and wait for a line
  on stdin before quitting cleanly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from imgcap_desktop.gui.session import CaptionSession

    folder, mode, *photos = sys.argv[1:]
    app = QApplication.instance() or QApplication([])  # noqa: F841 - Qt needs it alive
    session = CaptionSession(lambda source: None, store_folder=Path(folder))
    session.add_paths([Path(p) for p in photos])
    if mode == "edit":
        count = len(photos)
        number = 0
        while True:
            session.edit(number % count, f"edit {number}", typing=True)
            print(number, flush=True)
            number += 1
    session.edit(0, "typed in the other instance")
    print("ready", flush=True)
    sys.stdin.readline()
    session.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
