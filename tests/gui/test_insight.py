"""Confidence, keywords and where the model looked, in the window: a real calibrated attend
bundle (small, random decoder weights, the real EfficientNet-Lite0 encoder and ImageNet head) in
the real worker thread, real photo files, the real session file, pixels of the grabbed widget."""

from __future__ import annotations

import csv
import sqlite3

import numpy as np
import pytest
from PySide6.QtCore import Qt

from imgcap_desktop.core.metadata import read_keywords
from imgcap_desktop.gui.caption_insight import NO_ATTENTION, NO_CALIBRATION
from imgcap_desktop.gui.queue_model import COL_CONFIDENCE
from imgcap_desktop.gui.worker import default_loader

from .conftest import write_photo


@pytest.fixture(scope="module")
def calibrated_bundle(tmp_path_factory):
    from tests.core.test_confidence_keywords import rows_and_labels
    from tests.core.test_litert import LITE0_WEIGHTS, make_attend_bundle

    from imgcap_desktop.core import confidence

    if not LITE0_WEIGHTS.is_file():
        pytest.skip("the shipped EfficientNet-Lite0 weights are missing")
    rows, good = rows_and_labels()
    cal = confidence.fit(rows, good, names=["mean_log_prob", "min_log_prob", "class_top"], check_below=0.5)
    return make_attend_bundle(tmp_path_factory.mktemp("gui-calibrated") / "b", semantic=True,
                              calibration=cal.to_json(), keywords={"threshold": 0.0})


@pytest.fixture
def captioned(make_window, calibrated_bundle, tmp_path, qtbot, idle, shown_errors):
    """The window with three photos captioned by the real calibrated model."""
    photos = [write_photo(tmp_path / "p" / f"photo{i}.jpg", (280, 210), (128, 128, 128 - 40 * i)) for i in range(3)]
    window = make_window(default_loader, load=False)
    window.settings.set("model_path", str(calibrated_bundle))
    window.settings.set("caption_on_open", False)
    window.resize(1200, 800)
    window.show()
    window.load_model()
    qtbot.waitUntil(lambda: not window.loading, timeout=300_000)
    assert window.model_ready, shown_errors
    window.add_paths(photos)
    idle(window)
    window.caption_all()
    idle(window, 300_000)
    return window, photos


def show(window, qtbot, number: int) -> None:
    """Select a queue row and wait until its photo is in the preview."""
    window.select_row(number)
    qtbot.waitUntil(lambda: window.preview.has_image(), timeout=10_000)


def brightness(image, x: int, y: int) -> float:
    c = image.pixelColor(x, y)
    return (c.red() + c.green() + c.blue()) / 3


@pytest.mark.slow
def test_the_overlay_is_drawn_where_the_words_attention_peaks(captioned, qtbot):
    window, photos = captioned
    show(window, qtbot, 0)
    maps = window.insight.maps
    assert maps and len(window.insight.buttons) == len(maps)
    rect = window.preview.photo_rect()
    assert rect.width() > 100 and abs(rect.width() / rect.height() - 280 / 210) < 0.05
    rows, cols = maps[0].grid.shape

    def centre(cell):
        r, c = cell
        return int(rect.left() + (c + 0.5) * rect.width() / cols), int(rect.top() + (r + 0.5) * rect.height() / rows)

    # The legend sits in the photo's lower left corner: test a word whose peak and lowest cell are clear of it.
    def clear_of_legend(cell):
        return not (cell[0] >= rows - 2 and cell[1] <= 3)

    checked = 0
    for index, m in enumerate(maps):
        low = tuple(int(v) for v in np.unravel_index(int(np.argmin(m.grid)), m.grid.shape))
        if not (clear_of_legend(m.peak()) and clear_of_legend(low)) or m.grid.max() - m.grid.min() < 1e-6:
            continue
        window.insight.buttons[index].click()
        assert window.preview.overlay_word == m.word
        image = window.preview.grab().toImage()
        peak, least = brightness(image, *centre(m.peak())), brightness(image, *centre(low))
        # The ramp runs dark (looked least) to pale yellow (looked most) on a grey photo.
        assert peak > least + 40, (m.word, m.peak(), low, peak, least)
        checked += 1
        if checked == 2:
            break
    assert checked, "no word's map was clear of the legend"
    # Clicking the word again takes the overlay away; the photo is as it was.
    pinned = window.insight.current_word()
    window.insight.buttons[pinned].click()
    assert window.preview.overlay_word is None


@pytest.mark.slow
def test_every_word_strip_and_confidence_column(captioned, qtbot):
    window, photos = captioned
    show(window, qtbot, 1)
    window.insight.every_word.setChecked(True)
    assert window.preview_stack.currentWidget() is window.strip_view
    pixmap = window.strip_view.label.pixmap()
    assert pixmap is not None and not pixmap.isNull() and pixmap.width() > 300
    window.insight.every_word.setChecked(False)
    assert window.preview_stack.currentWidget() is window.preview

    rows = window.queue.rows
    values = [r.confidence for r in rows]
    assert all(v is not None and 0 <= v <= 1 for v in values)
    # A line between the photos' confidences: those below get the badge and the To check filter.
    line = float(np.mean(sorted(values)[:2])) if len(set(values)) > 1 else values[0] + 0.01
    window.settings.set("check_below", line)
    window.apply_settings({"check_below": line})
    texts = [window.queue.index(i, COL_CONFIDENCE).data() for i in range(len(rows))]
    below = [i for i, v in enumerate(values) if v < line]
    assert below and all(("check" in texts[i]) == (i in below) for i in range(len(rows))), texts
    assert f"{100 * values[0]:.0f}%" in texts[0]
    window.status_filter.setCurrentText("To check")
    shown = [window.proxy.mapToSource(window.proxy.index(r, 0)).row() for r in range(window.proxy.rowCount())]
    assert shown == below
    window.status_filter.setCurrentIndex(0)
    window.table.sortByColumn(COL_CONFIDENCE, Qt.SortOrder.AscendingOrder)
    order = [window.proxy.mapToSource(window.proxy.index(r, 0)).row() for r in range(window.proxy.rowCount())]
    assert [values[i] for i in order] == sorted(values)
    # An edit is the person's caption: no confidence for it, and the panel says why.
    window.select_row(0)
    window.session.edit(0, "my own words")
    assert window.queue.row(0).confidence is None and window.queue.index(0, COL_CONFIDENCE).data() == ""
    assert "Your caption" in window.insight.confidence.text()


@pytest.mark.slow
def test_keywords_are_editable_undoable_kept_and_written(captioned, qtbot, tmp_path):
    window, photos = captioned
    window.select_row(2)
    row = window.queue.row(2)
    model_words = row.caption.keywords
    assert model_words and window.insight.keywords.text() == ", ".join(model_words)
    window.insight.keywords.setText("grey, wall ,  grey")
    window.insight.keywords.editingFinished.emit()
    assert window.queue.row(2).current_keywords == ("grey", "wall")
    stored = sqlite3.connect(window.session.store.path).execute(
        "SELECT keywords FROM photos WHERE path = ?", (str(row.path),)).fetchone()[0]
    assert stored == '["grey", "wall"]'
    window.session.undo_stack.undo()
    assert window.queue.row(2).current_keywords == model_words
    assert window.insight.keywords.text() == ", ".join(model_words)
    window.session.undo_stack.redo()

    window.write_into_photo()
    qtbot.waitUntil(lambda: read_keywords(photos[2]) == ("grey", "wall"), timeout=5_000)
    assert window.export_to(tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
        records = {r["image"]: r for r in csv.DictReader(fh)}
    assert records[str(photos[2])]["keywords"] == "grey, wall"
    assert records[str(photos[0])]["keywords"] == ", ".join(window.queue.row(0).caption.keywords)
    assert 0 <= float(records[str(photos[0])]["confidence"]) <= 1


@pytest.mark.slow
def test_seed_model_says_it_has_no_spatial_attention_and_no_calibration(make_window, seed_bundle, tmp_path, qtbot,
                                                                         idle, shown_errors):
    photo = write_photo(tmp_path / "s" / "one.jpg", (120, 90), (90, 140, 200))
    window = make_window(default_loader, load=False)
    window.settings.set("model_path", str(seed_bundle))
    window.settings.set("caption_on_open", False)
    window.show()
    window.load_model()
    qtbot.waitUntil(lambda: not window.loading, timeout=300_000)
    assert window.model_ready, shown_errors
    window.add_paths([photo])
    idle(window)
    window.caption_all()
    idle(window, 300_000)
    window.select_row(0)
    assert window.queue.row(0).caption is not None
    assert window.insight.no_attention.isVisible() and window.insight.no_attention.text() == NO_ATTENTION
    assert not window.insight.every_word.isVisible() and not window.insight.buttons
    assert window.insight.confidence.text() == NO_CALIBRATION
    assert window.queue.index(0, COL_CONFIDENCE).data() == ""
    assert "no calibration" in window.queue.index(0, COL_CONFIDENCE).data(Qt.ItemDataRole.ToolTipRole)


@pytest.mark.slow
def test_pointing_at_a_word_shows_it_and_leaving_goes_back_to_the_clicked_one(captioned, qtbot):
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QEnterEvent
    from PySide6.QtWidgets import QApplication

    window, _ = captioned
    show(window, qtbot, 0)
    buttons = window.insight.buttons
    assert len(buttons) >= 3
    buttons[0].click()
    assert window.preview.overlay_word == buttons[0].text()
    QApplication.sendEvent(buttons[2], QEnterEvent(QPointF(2, 2), QPointF(2, 2), QPointF(2, 2)))
    assert window.insight.current_word() == 2 and window.preview.overlay_word == buttons[2].text()
    QApplication.sendEvent(buttons[2], QEvent(QEvent.Type.Leave))
    assert window.insight.current_word() == 0 and window.preview.overlay_word == buttons[0].text()
