"""The window as a view of its session: reopening the last queue, undo keys in the editor,
search, filter and sort of the queue, zoom, About, and captioning on open."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from imgcap_desktop.gui import dialogs
from imgcap_desktop.gui.queue_model import COL_PHOTO, DONE, WAITING

from .conftest import write_photo


def leave_a_queue(make_window, photos, idle, qtbot):
    """A first window that captions three photos, edits one, and is shut down (as by a crash)."""
    window = make_window()
    window.add_paths([photos["red"], photos["green"], photos["blue"]])
    idle(window)
    window.select_row(1)
    window.caption_edit.setPlainText("my own words")
    window.shutdown()
    return window


@pytest.mark.parametrize("policy, answer, restored", [("always", None, 3), ("never", None, 0),
                                                      ("ask", True, 3), ("ask", False, 0)])
def test_the_next_launch_reopens_the_queue_as_the_setting_says(make_window, photos, idle, qtbot, settings,
                                                               monkeypatch, policy, answer, restored):
    leave_a_queue(make_window, photos, idle, qtbot)
    settings.set("restore_session", policy)
    asked = []
    if answer is not None:
        monkeypatch.setattr(dialogs, "ask_restore", lambda parent, count, unsaved: asked.append((count, unsaved)) or answer)
    window = make_window(load=False)
    qtbot.waitUntil(lambda: not window.session.restorable or restored == 0, timeout=5000)
    qtbot.wait(50)
    assert window.queue.rowCount() == restored
    assert asked == ([(3, 3)] if answer is not None else [])  # no caption was saved anywhere
    if restored:
        assert window.queue.rows[1].text == "my own words" and window.queue.rows[1].unsaved
        assert window.caption_edit.toPlainText() == window.queue.rows[0].text  # the first photo is shown
    else:
        # Not reopened means forgotten: the launch after this one has nothing to offer either.
        window.shutdown()
        third = make_window(load=False)
        assert third.session.restorable == []


def test_discard_on_quit_forgets_the_queue(make_window, photos, idle, qtbot, monkeypatch, settings):
    window = make_window()
    window.add_paths([photos["red"]])
    idle(window)
    monkeypatch.setattr(dialogs, "ask_unsaved", lambda parent, count: dialogs.DISCARD)
    window.show()
    assert window.close()
    settings.set("restore_session", "always")
    assert make_window(load=False).session.restorable == []


def test_ctrl_z_in_the_caption_editor_undoes_through_the_session(make_window, photos, idle, qtbot):
    window = make_window()
    window.show()
    window.add_paths([photos["red"]])
    idle(window)
    model_text = window.queue.rows[0].text
    window.caption_edit.setFocus()
    window.caption_edit.moveCursor(window.caption_edit.textCursor().MoveOperation.End)
    qtbot.keyClicks(window.caption_edit, " indeed")
    assert window.queue.rows[0].text == model_text + " indeed"
    assert window.session.undo_stack.count() == 1  # seven keystrokes, one step
    qtbot.keySequence(window.caption_edit, QKeySequence("Ctrl+Z"))
    assert window.caption_edit.toPlainText() == model_text and window.queue.rows[0].text == model_text
    qtbot.keySequence(window.caption_edit, QKeySequence("Ctrl+Shift+Z"))
    assert window.caption_edit.toPlainText() == model_text + " indeed"
    # An alternative picked from the list is a step of its own.
    window._on_alternative_clicked(window.alternatives.item(1))
    assert window.queue.rows[0].text.endswith("variant 1")
    window.act_undo.trigger()
    assert window.queue.rows[0].text == model_text + " indeed"
    assert "Undo" in window.act_undo.text() and window.act_redo.isEnabled()


def test_search_filter_and_sort_show_a_part_of_the_queue_in_another_order(make_window, tmp_path, idle, qtbot):
    window = make_window()
    names = ["cherry", "apple", "banana", "apricot"]
    paths = [write_photo(tmp_path / "fruit" / f"{n}.jpg") for n in names]
    broken = tmp_path / "fruit" / "bad.jpg"
    broken.write_bytes(b"no")
    window.add_paths(paths + [broken])
    idle(window)
    window.select_row(2)
    window.caption_edit.setPlainText("a yellow banana")

    def shown():
        return [window.proxy.index(r, COL_PHOTO).data() for r in range(window.proxy.rowCount())]

    assert shown() == ["cherry.jpg", "apple.jpg", "banana.jpg", "apricot.jpg", "bad.jpg"]  # as added
    qtbot.keyClicks(window.search, "ap")
    assert shown() == ["apple.jpg", "apricot.jpg"]
    assert "2 shown" in window.queue_label.text()
    window.search.clear()
    qtbot.keyClicks(window.search, "YELLOW")  # captions too, any case
    assert shown() == ["banana.jpg"]
    window.search.clear()
    window.status_filter.setCurrentText("Failed")
    assert shown() == ["bad.jpg"]
    window.status_filter.setCurrentText("Edited")
    assert shown() == ["banana.jpg"]
    window.status_filter.setCurrentText("All photos")
    window.table.sortByColumn(COL_PHOTO, Qt.SortOrder.AscendingOrder)
    assert shown() == ["apple.jpg", "apricot.jpg", "bad.jpg", "banana.jpg", "cherry.jpg"]
    assert [r.name for r in window.queue.rows][:2] == ["cherry.jpg", "apple.jpg"]  # the queue keeps its order

    # Selecting in the sorted table shows the right photo, and removing removes that one.
    window.table.selectRow(0)
    assert window.current_row().name == "apple.jpg"
    window.remove_selected()
    assert "apple.jpg" not in [r.name for r in window.queue.rows]


def test_clicking_the_shown_photo_zooms_and_an_empty_preview_opens_files(make_window, tmp_path, qtbot, monkeypatch):
    window = make_window(load=False)
    window.show()
    opened = []
    monkeypatch.setattr(window, "open_files", lambda: opened.append(True))
    qtbot.mouseClick(window.preview, Qt.MouseButton.LeftButton)
    assert opened == [True]

    big = write_photo(tmp_path / "big.jpg", (2400, 1200))
    window.add_paths([big])
    qtbot.waitUntil(window.preview.has_image, timeout=5000)
    qtbot.mouseClick(window.preview, Qt.MouseButton.LeftButton)
    assert opened == [True]
    zoom = window._zoom
    assert zoom is not None and zoom.isVisible()
    # The preview's copy is 1600 px wide; the full-size decode replaces it.
    qtbot.waitUntil(lambda: zoom._image.width() == 2400, timeout=5000)
    zoom.set_scale(1.0)
    assert zoom.label.pixmap().width() == 2400
    zoom.zoom_out()
    assert zoom.scale < 1.0 and "2400 × 1200" in zoom.zoom_label.text()
    zoom.close()


def test_about_names_the_version_the_model_and_the_licences(make_window, qtbot, monkeypatch):
    from imgcap_desktop import __version__
    from imgcap_desktop.gui.about import AboutDialog

    window = make_window()
    dialog = AboutDialog(window.session.model_name, "", window)
    qtbot.addWidget(dialog)
    text = " ".join(label.text() for label in dialog.findChildren(type(window.model_label)))
    assert __version__ in text and "Fake model" in text
    assert "BLEU-4" in dialog.card.toPlainText()  # the default model's card
    licences = dialog.licences.toPlainText()
    assert "Apache" in licences and "PySide6" in licences and "CC" in licences  # the sample photos' licence
    assert window.act_about in window.menuBar().actions()[-1].menu().actions()


def test_caption_on_open_can_be_turned_off_and_on(make_window, photos, idle, qtbot, settings):
    window = make_window()
    window.act_auto.trigger()  # off
    assert settings.get("caption_on_open") is False
    window.add_paths([photos["red"]])
    qtbot.waitUntil(lambda: not window.session.checking)
    assert not window.busy and window.queue.rows[0].status == WAITING
    window.act_auto.trigger()  # on again: the waiting photo is captioned now
    assert settings.get("caption_on_open") is True
    idle(window)
    assert window.queue.rows[0].status == DONE


def test_a_caption_someone_already_wrote_is_shown_and_never_replaced_unasked(make_window, tmp_path, idle, qtbot,
                                                                            settings):
    from imgcap_desktop.core.metadata import write_description
    from imgcap_desktop.gui.queue_model import FOUND, status_text

    folder = tmp_path / "mine"
    with_sidecar = write_photo(folder / "one.jpg")
    (folder / "one.txt").write_text("my dog on the beach\n")
    described = write_photo(folder / "two.jpg")
    write_description(described, "grandma's garden in May")
    write_photo(folder / "three.jpg")  # nothing written for it: it goes to the model

    window = make_window()
    window.add_paths([folder])
    idle(window)
    rows = {r.name: r for r in window.queue.rows}
    assert (rows["one.jpg"].status, rows["one.jpg"].text, status_text(rows["one.jpg"])) == \
        (FOUND, "my dog on the beach", "from one.txt")
    assert (rows["two.jpg"].text, status_text(rows["two.jpg"])) == ("grandma's garden in May", "from the photo")
    assert rows["three.jpg"].status == DONE  # only this one went to the model
    assert [p.name for p in window.loader.captioner.calls[-1]["paths"]] == ["three.jpg"]
    assert not rows["one.jpg"].unsaved and not rows["two.jpg"].unsaved  # already saved where they were found
    window.caption_all()  # everything is captioned: Caption All leaves the found ones alone
    idle(window)
    assert rows["one.jpg"].text == "my dog on the beach"

    # Asked for explicitly, the model's caption replaces it, and undo brings it back.
    window.select_row(window.queue.row_of(with_sidecar))
    window.caption_current()
    idle(window)
    assert rows["one.jpg"].text.startswith("a photo named one")
    window.act_undo.trigger()
    assert rows["one.jpg"].text == "my dog on the beach"

    # The next launch shows where it came from too.
    window.shutdown()
    settings.set("restore_session", "always")
    again = make_window(load=False)
    qtbot.waitUntil(lambda: again.queue.rowCount() == 3)
    restored = {r.name: r for r in again.queue.rows}
    assert status_text(restored["two.jpg"]) == "from the photo"


def test_find_replace_prefix_and_suffix_change_many_captions_in_one_undo_step(make_window, tmp_path, idle, qtbot,
                                                                            monkeypatch):
    window = make_window()
    paths = [write_photo(tmp_path / "set" / f"{n}.jpg") for n in ("a", "b", "c")]
    window.add_paths(paths)
    idle(window)
    before = [r.text for r in window.queue.rows]
    window.table.selectRow(0)
    window.table.selectionModel().select(window.proxy.index(1, 0), window.table.selectionModel().SelectionFlag.Select
                                         | window.table.selectionModel().SelectionFlag.Rows)
    asked = []
    monkeypatch.setattr(dialogs, "ask_rewrite", lambda parent, selected, total: asked.append((selected, total)) or
                        {"find": "pixels", "replace": "px", "prefix": "sks, ", "suffix": "", "scope": "selected"})
    window.act_rewrite.trigger()
    assert asked == [(2, 3)]
    texts = [r.text for r in window.queue.rows]
    assert texts[0] == "sks, " + before[0].replace("pixels", "px") and texts[1].startswith("sks, ")
    assert texts[2] == before[2]  # not selected
    window.session.rewrite([0], prefix="sks, ")
    assert window.queue.rows[0].text == texts[0]  # the prefix is not added twice
    window.act_undo.trigger()
    assert [r.text for r in window.queue.rows] == before  # one step for both photos
    assert window.queue.rows[0].unsaved and not window.queue.rows[0].edited
