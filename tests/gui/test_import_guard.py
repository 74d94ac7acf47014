"""The GUI must come up without TensorFlow: the engine is imported in the worker only."""

import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    import imgcap_desktop.gui.app, imgcap_desktop.gui.main_window, imgcap_desktop.gui.worker
    from PySide6.QtWidgets import QApplication
    from imgcap_desktop.gui.main_window import MainWindow
    app = QApplication([])
    window = MainWindow(load_on_start=False)
    window.show()
    app.processEvents()
    heavy = sorted(m for m in ("tensorflow", "keras", "imgcap_desktop.core.captioner") if m in sys.modules)
    window.close()
    assert not heavy, heavy
    print("clean")
    """
)


def test_gui_modules_and_window_do_not_import_tensorflow(tmp_path):
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "clean" in done.stdout
