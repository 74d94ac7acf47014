"""Screenshots of the desktop app for the README and for eyeballing the layout.

    xvfb-run -s "-screen 0 1400x900x24" env QT_QPA_PLATFORM=xcb \
        python scripts/screenshot.py resources/screenshots [--fake] [--scenario all]

Scenarios: empty window, one photo captioned, where the model looked for one word (the
overlay) and for every word (the strip), a batch with a failed row, the File
menu open, the queue searched and sorted, the zoom view, Settings, About, the unsaved
question and the reopen question at the next launch (dialogs and menus are grabbed from
the screen, so they need a real X server such as Xvfb). The
sample photos come from resources/samples/. --fake swaps the model for a
deterministic stand-in that labels its captions as such (layout checks only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLES = ROOT / "resources" / "samples"
SCENARIOS = ("empty", "photo", "attention", "batch", "menu", "filter", "found", "zoom", "settings", "rewrite",
             "about", "restore", "unsaved")


class DemoCaptioner:
    name = "layout demo (not a model)"
    description = "placeholder captions for layout screenshots"

    def caption_paths(self, paths, *, beam=3, max_length=0, batch_size=8, length_penalty=None, keyword_guide=None,
                      cancelled=None):
        from imgcap_desktop.core.errors import ImgcapError
        from imgcap_desktop.core.images import load_rgb
        from imgcap_desktop.core.results import Alternative, Caption, CaptionResult

        for path in paths:
            if cancelled is not None and cancelled():
                return
            time.sleep(0.05)
            try:
                load_rgb(path)
            except ImgcapError as exc:
                yield CaptionResult(Path(path), error=str(exc))
                continue
            text = f"placeholder caption for {Path(path).stem}"
            alternatives = tuple(Alternative(text if k == 0 else f"{text}, option {k + 1}", -2.0 - k, (-2.0 - k) / 6)
                                 for k in range(3))
            yield CaptionResult(Path(path), caption=Caption(text, alternatives[0].score, alternatives))


def wait(app, condition, timeout=600.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the window")
        app.processEvents()
        time.sleep(0.01)


def settle(app, seconds=0.4):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    parser.add_argument("--fake", action="store_true", help="use a placeholder captioner")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--size", default="1240x800")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QSettings, Qt, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from imgcap_desktop.gui.about import AboutDialog
    from imgcap_desktop.gui.dialogs import RewriteDialog, SettingsDialog

    from imgcap_desktop.gui.app import process_age
    from imgcap_desktop.gui.main_window import MainWindow, app_icon
    from imgcap_desktop.gui.settings import Settings
    from imgcap_desktop.gui.worker import default_loader

    app = QApplication(sys.argv[:1])
    app.setApplicationDisplayName("Image Caption")
    app.setWindowIcon(app_icon())
    scratch = Path(tempfile.mkdtemp(prefix="imgcap-shots-"))
    settings = Settings(QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat))
    if args.model:
        settings.set("model_path", args.model)
    loader = (lambda source: DemoCaptioner()) if args.fake else default_loader
    window = MainWindow(settings, loader, session_folder=scratch / "session")
    shown_at = []
    window.shown.connect(lambda: shown_at.append(process_age()))
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    wait(app, lambda: bool(shown_at))
    print(f"window shown {shown_at[0]:.3f} s after process start", flush=True)
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)

    def grab(name):
        settle(app)
        path = args.out / f"{name}.png"
        window.grab().save(str(path))
        print(path, flush=True)

    def grab_screen(name, widget):
        """A dialog is a window of its own: grab the screen around it and the main window."""
        settle(app, 0.6)
        frame = window.frameGeometry().united(widget.frameGeometry())
        path = args.out / f"{name}.png"
        app.primaryScreen().grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height()).save(str(path))
        print(path, flush=True)

    def grab_modal(name, role):
        box = app.activeModalWidget()
        grab_screen(name, box)
        for button in box.buttons():
            if box.buttonRole(button) == role:
                button.click()

    if "empty" in scenarios:
        grab("empty-window")
    wait(app, lambda: window.model_ready or "not loaded" in window.statusBar().currentMessage())
    print(f"model ready {process_age():.1f} s after process start: {window.model_label.text()}", flush=True)
    if "photo" in scenarios:
        window.clear_queue()
        window.add_paths([SAMPLES / "chelsea.jpg"])
        wait(app, lambda: not window.busy and window.preview.has_image())
        grab("one-photo")
    if "attention" in scenarios:
        window.clear_queue()
        numbers = window.add_paths([SAMPLES / "chelsea.jpg", SAMPLES / "coffee.jpg", SAMPLES / "astronaut.jpg"])
        wait(app, lambda: not window.busy and not window.queue.numbers_with_status("waiting", "checking"))
        window.select_row(numbers[0])
        wait(app, lambda: window.preview.has_image())
        buttons = window.insight.buttons
        if buttons:
            # Captions open "a <adjective> <noun>" or "a <noun>": the third word, else the last.
            pick = min(2, len(buttons) - 1)
            buttons[pick].click()
            settle(app, 0.6)
            grab("attention-overlay")
            window.insight.every_word.setChecked(True)
            settle(app, 0.6)
            grab("attention-strip")
            window.insight.every_word.setChecked(False)
            buttons = window.insight.buttons
            if buttons:
                buttons[pick].click()
    if "batch" in scenarios:
        window.clear_queue()
        broken = scratch / "holiday-042.jpg"
        broken.write_bytes(b"\xff\xd8\xff\xe0 truncated download")
        window.add_paths([SAMPLES / "coffee.jpg", SAMPLES / "astronaut.jpg", broken, SAMPLES / "chelsea.jpg"])
        wait(app, lambda: not window.busy and not window.queue.numbers_with_status("waiting"))
        window.select_row(1)
        wait(app, lambda: window.preview.has_image())
        grab("batch-with-failure")
    if "menu" in scenarios:
        if not window.queue.captioned():
            window.add_paths([SAMPLES / "coffee.jpg"])
            wait(app, lambda: not window.busy and bool(window.queue.captioned()))
        # A menu is a window of its own: grab the screen where the main window is, menu included.
        settle(app, 0.5)
        menu = window.menuBar().actions()[0].menu()
        menu.popup(window.mapToGlobal(window.menuBar().geometry().bottomLeft()))
        settle(app, 0.8)
        frame = window.frameGeometry()
        path = args.out / "file-menu.png"
        app.primaryScreen().grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height()).save(str(path))
        print(path, flush=True)
        menu.hide()
    if "filter" in scenarios:
        window.search.setText("a")
        window.status_filter.setCurrentText("Captioned")
        window.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        grab("queue-search-sort")
        window.search.clear()
        window.status_filter.setCurrentIndex(0)
        window.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
    if "found" in scenarios:
        # A photo whose caption someone already wrote (its NAME.txt): shown as found, not replaced.
        import shutil

        mine = scratch / "mine"
        mine.mkdir(exist_ok=True)
        shutil.copy(SAMPLES / "chelsea.jpg", mine / "our-cat.jpg")
        (mine / "our-cat.txt").write_text("Chelsea, our tabby cat, on the rug\n")
        number = window.add_paths([mine / "our-cat.jpg"])[0]
        wait(app, lambda: not window.session.checking and not window.busy)
        window.select_row(number)
        wait(app, lambda: window.preview.has_image())
        grab("found-caption")
    if "zoom" in scenarios and window.current_row() is not None:
        zoom = window.show_zoom(window.current_row())
        settle(app, 1.0)
        zoom.set_scale(1.0)
        grab_screen("zoom", zoom)
        zoom.close()
    for name, make in (("settings", lambda: SettingsDialog(settings.all(), window)),
                       ("rewrite", lambda: RewriteDialog(len(window.selected_numbers()), window.queue.rowCount(), window)),
                       ("about", lambda: AboutDialog(window.session.model_name, settings.get("model_path"), window))):
        if name in scenarios:
            dialog = make()
            dialog.show()
            grab_screen(name, dialog)
            dialog.close()
    if "restore" in scenarios and window.queue.rowCount():
        # The next launch, with this run's queue left behind (as after a crash): it asks.
        window.shutdown()
        window.close()
        settings.set("restore_session", "ask")
        QTimer.singleShot(1200, lambda: grab_modal("restore-question", QMessageBox.ButtonRole.AcceptRole))
        window = MainWindow(settings, loader, session_folder=scratch / "session", load_on_start=False)
        window.resize(width, height)
        window.show()
        wait(app, lambda: window.queue.rowCount() > 0, timeout=30)
    if "unsaved" in scenarios and window.queue.unsaved():
        # The question is modal: a timer grabs the screen while it is open, then answers Discard.

        def grab_question():
            box = app.activeModalWidget()
            settle(app, 0.5)
            frame = window.frameGeometry()
            path = args.out / "unsaved-question.png"
            app.primaryScreen().grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height()).save(str(path))
            print(path, flush=True)
            box.button(QMessageBox.StandardButton.Discard).click()

        QTimer.singleShot(800, grab_question)
    else:
        window.shutdown()  # nothing to ask about in a screenshot run
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
