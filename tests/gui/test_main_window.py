"""Main window behaviour, with a pure-Python captioner in the real worker thread."""

import threading

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage

from imgcap_desktop.gui.queue_model import CANCELLED, COL_CAPTION, COL_PHOTO, COL_STATUS, DONE, FAILED, WAITING

from .conftest import FakeLoader, write_photo

WORK = ("act_caption", "act_caption_all", "act_save_all", "act_write", "act_export", "act_model", "act_settings")


def enabled(window, names=WORK) -> dict:
    return {name: getattr(window, name).isEnabled() for name in names}


def many_photos(tmp_path, count, folder="batch"):
    return [write_photo(tmp_path / folder / f"photo{i:03d}.png", (24, 16)) for i in range(count)]


def no_auto(window):
    window.settings.set("caption_on_open", False)


def test_window_shows_before_a_model_and_waits_for_it(make_window, photos, idle, qtbot):
    window = make_window(load=False)
    window.show()
    window.add_paths([photos["red"]])
    idle(window)  # the photo was looked at for a caption already written: none
    assert not window.model_ready
    assert not window.act_caption.isEnabled() and not window.act_caption_all.isEnabled()
    assert window.queue.rows[0].status == WAITING
    window.load_model()
    # model_ready enables captioning and picks up the photo waiting for it
    qtbot.waitUntil(lambda: window.model_ready)
    idle(window)
    assert window.model_label.text() == "Model: Fake model"
    assert window.queue.rows[0].status == DONE


def test_work_buttons_disabled_from_start_until_finished(make_window, photos, idle):
    window = make_window()
    no_auto(window)
    window.add_paths([photos["red"], photos["green"], photos["blue"]])
    idle(window)
    assert all(enabled(window, ("act_caption", "act_caption_all", "act_model", "act_settings")).values())

    seen = {}
    session = window.session
    session.job_started.connect(lambda total: seen.setdefault("started", (enabled(window), window.act_cancel.isEnabled())))
    session.job_progress.connect(lambda d, t, s: seen.setdefault(f"progress{d}", (enabled(window), window.act_cancel.isEnabled())))
    # The worker's own finished signal: until it arrives the buttons stay off.
    session.worker.finished.connect(lambda c: seen.setdefault("worker finished", (enabled(window), window.act_cancel.isEnabled())))
    session.job_finished.connect(lambda m, ok: seen.setdefault("finished", (enabled(window), window.act_cancel.isEnabled())))
    window.caption_all()
    assert not any(enabled(window).values()) and window.act_cancel.isEnabled()  # at once, before any signal
    idle(window)

    for moment in ("started", "progress1", "progress2", "worker finished"):
        states, cancel = seen[moment]
        assert not any(states.values()), (moment, states)
        assert cancel, moment
    states, cancel = seen["finished"]
    assert all(states.values()), states
    assert not cancel
    assert [r.status for r in window.queue.rows] == [DONE, DONE, DONE]


def test_broken_photo_fails_with_reason_and_the_rest_succeed(make_window, photos, idle):
    window = make_window()
    window.add_paths([photos["folder"]])
    idle(window)
    statuses = {r.name: r.status for r in window.queue.rows}
    assert statuses == {"red.jpg": DONE, "broken.jpg": FAILED, "green.png": DONE, "blue.jpg": DONE}
    number = window.queue.row_of(photos["broken"])
    status_index = window.queue.index(number, COL_STATUS)
    caption_index = window.queue.index(number, COL_CAPTION)
    assert window.queue.data(status_index) == "failed"
    reason = window.queue.rows[number].error
    assert reason.startswith("broken.jpg")
    assert window.queue.data(caption_index) == reason  # the reason, as text
    assert window.queue.data(caption_index, Qt.ItemDataRole.EditRole) == ""  # not a caption
    assert window.queue.data(status_index, Qt.ItemDataRole.ToolTipRole) == reason
    assert window.queue.data(status_index, Qt.ItemDataRole.ForegroundRole) is not None
    assert "3 captioned, 1 failed" in window.queue_label.text()
    # The batch summary counts what was captioned, not every photo tried.
    message = window.statusBar().currentMessage()
    assert message.startswith("Captioned 3 photos, 1 failed in "), message


def test_cancel_mid_batch_marks_the_rest_cancelled(make_window, tmp_path, idle):
    window = make_window(delay=0.05)
    no_auto(window)
    window.add_paths(many_photos(tmp_path, 6))
    idle(window)
    finished = []
    window.session.worker.finished.connect(finished.append)
    # Cancel as the second result leaves the worker thread (a direct connection runs there), as
    # the Esc key would between two photos: the worker sees the flag before the third photo.
    results = []

    def second_result(*_):
        results.append(1)
        if len(results) == 2:
            window.session.worker.cancel()

    window.session.worker.result.connect(second_result, Qt.ConnectionType.DirectConnection)
    window.caption_all()
    idle(window)
    assert finished == [True]
    assert [r.status for r in window.queue.rows] == [DONE, DONE] + [CANCELLED] * 4
    assert "Cancelled: 2 of 6" in window.statusBar().currentMessage()
    assert window.act_caption_all.isEnabled() and not window.act_cancel.isEnabled()
    # Caption All picks up exactly the cancelled ones
    window.caption_all()
    idle(window)
    assert window.loader.captioner.calls[-1]["paths"] == [r.path for r in window.queue.rows[2:]]


def test_loader_failure_is_shown_and_buttons_come_back(make_window, photos, shown_errors):
    window = make_window(FakeLoader(fail="image_caption.h5 is missing from /models."))
    assert shown_errors == [("Model not loaded", "image_caption.h5 is missing from /models.")]
    assert window.model_label.text() == "No model"
    assert "image_caption.h5" in window.statusBar().currentMessage()
    window.add_paths([photos["red"]])
    assert not window.act_caption.isEnabled()
    assert window.act_model.isEnabled() and window.act_settings.isEnabled()


def test_engine_exception_is_shown_and_buttons_come_back(make_window, photos, shown_errors, idle):
    window = make_window(raise_after=1)
    finished = []
    window.session.worker.finished.connect(finished.append)
    window.add_paths([photos["red"], photos["green"], photos["blue"]])
    idle(window)
    assert finished == [False]
    assert shown_errors == [("Captioning stopped", "RuntimeError: the fake engine broke")]
    red, green, blue = window.queue.rows
    assert red.status == DONE
    assert green.status == FAILED and blue.status == FAILED and "fake engine broke" in green.error
    assert enabled(window, ("act_caption", "act_caption_all", "act_model", "act_settings")) == dict.fromkeys(
        ("act_caption", "act_caption_all", "act_model", "act_settings"), True
    )


def test_decoding_settings_reach_the_engine(make_window, photos, settings, idle):
    settings.set("beam", 5)
    settings.set("max_length", 12)
    settings.set("batch_size", 2)
    settings.set("length_penalty", 0.7)
    window = make_window()
    window.add_paths([photos["red"]])
    idle(window)
    call = window.loader.captioner.calls[-1]
    assert (call["beam"], call["max_length"], call["batch_size"], call["length_penalty"]) == (5, 12, 2, 0.7)
    assert window.alternatives.count() == 5


def test_selection_keyboard_navigation_and_editing(make_window, photos, qtbot, idle):
    window = make_window()
    window.show()
    window.add_paths([photos["red"], photos["green"]])
    idle(window)
    window.select_row(0)
    red, green = window.queue.rows
    assert window.caption_edit.toPlainText() == red.text
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_Down)
    assert window.caption_edit.toPlainText() == green.text
    assert window.windowTitle().startswith("green.png")

    window.caption_edit.setPlainText("a green square")
    assert green.text == "a green square" and green.edited
    assert window.queue.data(window.queue.index(1, COL_STATUS)) == "done (edited)"
    qtbot.keyClick(window.table, Qt.Key.Key_Up)
    assert window.caption_edit.toPlainText() == red.text
    qtbot.keyClick(window.table, Qt.Key.Key_Down)
    assert window.caption_edit.toPlainText() == "a green square"

    window.copy_caption()
    assert QGuiApplication.clipboard().text() == "a green square"


def test_alternative_is_one_click_away(make_window, photos, qtbot, idle):
    window = make_window()
    window.show()
    window.add_paths([photos["red"]])
    idle(window)
    assert window.alternatives.isVisible() and window.alternatives.count() == 3
    # Each shows the score it was ranked by, on the caption's own scale, best first.
    shown = [float(window.alternatives.item(i).text().rsplit("(", 1)[1].rstrip(")")) for i in range(3)]
    assert shown == sorted(shown, reverse=True)
    assert shown[0] == round(window.queue.rows[0].caption.score, 2)
    item = window.alternatives.item(2)
    rect = window.alternatives.visualItemRect(item)
    qtbot.mouseClick(window.alternatives.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.caption_edit.toPlainText().endswith("variant 2")
    assert window.queue.rows[0].text.endswith("variant 2")


def test_preview_keeps_aspect_and_exif_orientation(make_window, tmp_path, qtbot):
    from imgcap_desktop.gui.main_window import PREVIEW_SIZE

    # 60x20 pixels stored with "rotate 90" in EXIF: it must be shown 20 wide, 60 high.
    path = write_photo(tmp_path / "turned.jpg", (60, 20), exif_orientation=6)
    window = make_window(load=False)
    window.show()
    window.add_paths([path])
    qtbot.waitUntil(window.preview.has_image, timeout=5000)
    image = window.image_loader.cached(str(path), PREVIEW_SIZE)
    assert (image.width(), image.height()) == (20, 60)


def test_thumbnails_load_in_the_background(make_window, photos, qtbot):
    window = make_window(load=False)
    window.add_paths([photos["red"], photos["broken"]])
    index = window.queue.index(0, COL_PHOTO)
    window.queue.data(index, Qt.ItemDataRole.DecorationRole)  # asks for it
    qtbot.waitUntil(lambda: window.queue.data(index, Qt.ItemDataRole.DecorationRole) is not None, timeout=5000)
    assert not window.queue.data(index, Qt.ItemDataRole.DecorationRole).isNull()
    broken = window.queue.index(1, COL_PHOTO)
    window.queue.data(broken, Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: window.image_loader.has_failed(str(photos["broken"]), 64), timeout=5000)
    assert window.queue.data(broken, Qt.ItemDataRole.DecorationRole) is not None  # a warning icon


def test_broken_photo_preview_says_why(make_window, photos, qtbot):
    window = make_window(load=False)
    window.add_paths([photos["broken"]])
    qtbot.waitUntil(lambda: "broken.jpg" in window.preview.message and "Loading" not in window.preview.message, timeout=5000)
    assert not window.preview.has_image()


def test_paste_image_and_file_list(make_window, photos, tmp_path):
    window = make_window(load=False)
    clipboard = QGuiApplication.clipboard()
    image = QImage(12, 10, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.yellow)
    clipboard.setImage(image)
    window.paste()
    assert len(window.queue.rows) == 1 and window.queue.rows[0].path.suffix == ".png"
    clipboard.setText(f"{photos['red']}\nfile://{photos['green']}\n/not/there.jpg")
    window.paste()
    assert [r.name for r in window.queue.rows][1:] == ["red.jpg", "green.png"]
    clipboard.setText("hello")
    window.paste()
    assert "no image" in window.statusBar().currentMessage()


def test_remove_and_clear_and_undo_them(make_window, photos):
    window = make_window(load=False)
    window.add_paths([photos["red"], photos["green"], photos["blue"]])
    window.select_row(1)
    window.remove_selected()
    assert [r.name for r in window.queue.rows] == ["red.jpg", "blue.jpg"]
    assert window.queue.row_of(photos["blue"]) == 1
    window.clear_queue()
    assert window.queue.rowCount() == 0 and window.preview.message.startswith("Drop photos")
    assert not window.act_caption_all.isEnabled()
    window.act_undo.trigger()
    assert [r.name for r in window.queue.rows] == ["red.jpg", "blue.jpg"]
    window.act_undo.trigger()
    assert [r.name for r in window.queue.rows] == ["red.jpg", "green.png", "blue.jpg"]
    assert window.queue.row_of(photos["blue"]) == 2
    assert [p.path for p in window.session.store.photos()] == [str(r.path) for r in window.queue.rows]


def test_settings_change_loads_the_new_model(make_window, settings, tmp_path, qtbot):
    window = make_window()
    folder = tmp_path / "my-model"
    folder.mkdir()
    window.apply_settings({"beam": 4, "max_length": 0, "batch_size": 8, "sidecar_overwrite": "skip", "model_path": str(folder)})
    qtbot.waitUntil(lambda: not window.loading)
    assert window.loader.sources == [None, str(folder)]
    assert settings.get("model_path") == str(folder)
    assert settings.get("recent_models") == [str(folder)]
    assert settings.get("beam") == 4 and settings.get("sidecar_overwrite") == "skip"
    window.apply_settings({"beam": 2, "model_path": str(folder)})
    assert window.loader.sources == [None, str(folder)]  # unchanged model: no reload


def test_settings_dialog_reads_and_returns_values(qtbot, tmp_path):
    from imgcap_desktop.core.options import BY_NAME
    from imgcap_desktop.gui.dialogs import SettingsDialog

    dialog = SettingsDialog({"beam": 3, "max_length": 0, "batch_size": 8, "length_penalty": None,
                             "sidecar_overwrite": "overwrite", "caption_on_open": False, "restore_session": "never",
                             "model_path": "/m/b", "recent_models": ["/m/a", "/m/b"]})
    qtbot.addWidget(dialog)
    assert dialog.model.count() == 3 and dialog.model.currentData() == "/m/b"
    assert dialog.decoding["beam"].maximum() == BY_NAME["beam"].maximum
    assert dialog.decoding["max_length"].specialValueText() == "model's limit"
    assert dialog.decoding["length_penalty"].text() == "model's choice"
    dialog.decoding["beam"].setValue(7)
    dialog.model.setCurrentIndex(0)
    values = dialog.values()
    assert values == {"beam": 7, "max_length": 0, "batch_size": 8, "length_penalty": None, "keyword_guide": None,
                      "caption_on_open": False, "restore_session": "never", "check_below": None,
                      "sidecar_overwrite": "overwrite", "model_path": "", "sidecar_kind": "txt",
                      "caption_extension": ".txt", "xmp_naming": "full"}
    assert dialog.check_below.text() == "model's suggestion"
    dialog.check_below.setValue(0.35)
    assert dialog.values()["check_below"] == 0.35
    dialog.decoding["length_penalty"].setValue(0.5)
    assert dialog.values()["length_penalty"] == 0.5
    # Every mnemonic label has a buddy: without one Qt draws the "&" itself ("&Model:").
    from PySide6.QtWidgets import QLabel

    mnemonics = [label for label in dialog.findChildren(QLabel) if "&" in label.text()]
    assert len(mnemonics) == 12 and all(label.buddy() is not None for label in mnemonics)


def test_real_thread_batch_with_cancel_and_close(make_window, tmp_path, qtbot):
    window = make_window(delay=0.03)
    no_auto(window)
    window.show()
    window.add_paths(many_photos(tmp_path, 30))
    gui_thread = threading.get_ident()
    assert window.loader.threads and gui_thread not in window.loader.threads

    assert window.start_job(list(range(30)))
    assert not window.act_caption_all.isEnabled() and window.act_cancel.isEnabled()
    qtbot.waitUntil(lambda: len(window.queue.numbers_with_status(DONE)) >= 3, timeout=5000)
    assert not window.act_caption_all.isEnabled()  # still running: still disabled
    assert window.progress_bar.isVisible() and " / 30" in window.progress_label.text()
    window.cancel()
    qtbot.waitUntil(lambda: not window.busy, timeout=5000)
    statuses = [r.status for r in window.queue.rows]
    assert statuses.count(CANCELLED) > 0 and set(statuses) <= {DONE, CANCELLED}
    assert window.act_caption_all.isEnabled()
    assert gui_thread not in window.loader.captioner.threads


def test_closing_during_a_batch_stops_the_thread_cleanly(make_window, tmp_path, qtbot, qtlog, monkeypatch):
    from imgcap_desktop.gui import dialogs

    monkeypatch.setattr(dialogs, "ask_unsaved", lambda parent, count: dialogs.DISCARD)
    window = make_window(delay=0.05)
    no_auto(window)
    window.show()
    window.add_paths(many_photos(tmp_path, 40))
    qtbot.waitUntil(lambda: not window.session.checking)
    window.caption_all()
    qtbot.waitUntil(lambda: len(window.queue.numbers_with_status(DONE)) >= 1, timeout=5000)
    window.close()
    thread = window.session._thread.thread
    assert thread.isFinished() and not thread.isRunning()
    assert len(window.loader.captioner.calls) == 1
    assert not [r for r in qtlog.records if "Destroyed while thread" in r.message]


def test_a_failure_repaints_the_reason_in_the_caption_column(make_window, photos):
    """The view repaints only what dataChanged names: the reason must be named, not just the status."""
    window = make_window(load=False)
    window.add_paths([photos["red"]])
    changed = []
    window.queue.dataChanged.connect(lambda first, last, roles=(): changed.append((first.column(), last.column())))
    window.queue.set_status(0, FAILED, "red.jpg: is corrupt or truncated.")
    assert changed and any(first <= COL_CAPTION <= last and first <= COL_PHOTO for first, last in changed)


def test_a_folder_that_is_not_a_model_is_not_kept(make_window, photos, settings, shown_errors, qtbot):
    """Open Model Folder on a folder of photos: the old model stays, named, and nothing bad is saved."""
    window = make_window()
    settings.add_recent("recent_models", str(photos["folder"]))  # e.g. it once was a model folder
    window.loader.fail = f"{photos['folder']} has no manifest.json and no image_caption.h5."
    window.change_model(str(photos["folder"]))
    qtbot.waitUntil(lambda: not window.loading)
    assert shown_errors and shown_errors[-1][0] == "Model not loaded"
    assert window.model_ready and window.model_label.text() == "Model: Fake model"
    assert settings.get("model_path") == ""
    assert str(photos["folder"]) not in settings.get("recent_models")
    window.loader.fail = None
    window.change_model("/models/good")
    qtbot.waitUntil(lambda: not window.loading)
    assert settings.get("model_path") == "/models/good" and settings.get("recent_models")[0] == "/models/good"
