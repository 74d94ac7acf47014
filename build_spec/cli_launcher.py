"""Entry script of the packaged command line (PyInstaller): ``imgcap caption|info ...``.

It shares ``_internal/`` with the app. Commands that need TensorFlow (import-seed, train,
evaluate, ensemble, export-litert) are not in this build and say so.
"""

from __future__ import annotations

from imgcap_desktop.cli import main

if __name__ == "__main__":
    # Camera RAW is decoded in a spawned worker process (core.raw_photos): in a frozen app the
    # child is this executable again, and freeze_support makes it the worker instead of the app.
    import multiprocessing

    multiprocessing.freeze_support()
    raise SystemExit(main())
