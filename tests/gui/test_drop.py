"""Drag and drop onto the preview with real QMimeData carrying file and folder URLs."""

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from imgcap_desktop.gui.preview import PLACEHOLDER
from imgcap_desktop.gui.queue_model import DONE, FAILED


def url_mime(*paths) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drag_enter(widget, mime) -> QDragEnterEvent:
    event = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return event


def drop(widget, mime, enter=True) -> QDropEvent:
    # Qt only delivers a drop to a widget that accepted the drag's enter event.
    if enter:
        drag_enter(widget, mime)
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return event


def test_drop_files_and_folders_queues_images_and_counts_skipped(make_window, photos, tmp_path):
    from .conftest import write_photo

    window = make_window(load=False)
    extra = write_photo(tmp_path / "elsewhere" / "single.jpg")
    preview = window.preview
    assert preview.message == PLACEHOLDER

    mime = url_mime(photos["folder"], extra)
    entered = drag_enter(preview, mime)
    assert entered.isAccepted()
    assert preview.dragging  # highlighted while something is held over it

    dropped = drop(preview, mime)
    assert dropped.isAccepted()
    assert not preview.dragging
    names = [row.name for row in window.queue.rows]
    assert sorted(names) == ["blue.jpg", "broken.jpg", "green.png", "red.jpg", "single.jpg"]
    assert "non-image" not in names
    message = window.statusBar().currentMessage()
    assert "Added 5 photos" in message and "skipped 2 non-image files" in message


def test_drop_same_files_twice_does_not_duplicate(make_window, photos):
    window = make_window(load=False)
    drop(window.preview, url_mime(photos["red"]))
    drop(window.preview, url_mime(photos["red"], photos["green"]))
    assert [r.name for r in window.queue.rows] == ["red.jpg", "green.png"]
    assert "1 already in the queue" in window.statusBar().currentMessage()


def test_drag_leave_removes_highlight(make_window, photos):
    window = make_window(load=False)
    drag_enter(window.preview, url_mime(photos["red"]))
    assert window.preview.dragging
    QApplication.sendEvent(window.preview, QDragLeaveEvent())
    assert not window.preview.dragging


def test_text_only_drag_is_refused(make_window):
    window = make_window(load=False)
    mime = QMimeData()
    mime.setText("just words")
    event = drag_enter(window.preview, mime)
    assert not event.isAccepted()
    assert not window.preview.dragging


def test_dropped_photo_is_captioned_when_the_model_is_ready(make_window, photos, idle):
    window = make_window()
    drop(window.preview, url_mime(photos["red"], photos["broken"]))
    assert window.busy or window.session.checking  # captioning on open starts with the drop
    idle(window)
    red, broken = window.queue.rows
    assert red.status == DONE and red.text.startswith("a photo named red")
    assert broken.status == FAILED and "broken.jpg" in broken.error
    assert window.caption_edit.toPlainText() == red.text  # first dropped photo is shown


def test_dropped_image_data_is_saved_and_queued(make_window, tmp_path):
    window = make_window(load=False)
    image = QImage(30, 20, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkCyan)
    mime = QMimeData()
    mime.setImageData(image)
    assert drag_enter(window.preview, mime).isAccepted()
    drop(window.preview, mime)
    (row,) = window.queue.rows
    assert row.path.suffix == ".png" and row.path.exists()
    assert row.path.is_relative_to(tmp_path / "cache")


def test_window_accepts_drops_outside_the_preview(make_window, photos):
    window = make_window(load=False)
    drop(window, url_mime(photos["green"]))
    assert [r.name for r in window.queue.rows] == ["green.png"]


def test_a_drop_offered_as_a_move_is_taken_as_a_copy(make_window, photos):
    """A file manager that proposes Move and is answered Move deletes the originals."""
    window = make_window(load=False)
    move_or_copy = Qt.DropAction.MoveAction | Qt.DropAction.CopyAction
    for widget in (window.preview, window):
        mime = url_mime(photos["red"])
        enter = QDragEnterEvent(QPoint(20, 20), move_or_copy, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier)
        enter.setDropAction(Qt.DropAction.MoveAction)
        QApplication.sendEvent(widget, enter)
        assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction
        event = QDropEvent(QPointF(20, 20), move_or_copy, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
        event.setDropAction(Qt.DropAction.MoveAction)
        QApplication.sendEvent(widget, event)
        assert event.isAccepted() and event.dropAction() == Qt.DropAction.CopyAction
    assert photos["red"].is_file()
    green = url_mime(photos["green"])  # kept alive: the event does not own its mime data
    link_only = QDropEvent(QPointF(20, 20), Qt.DropAction.LinkAction, green,
                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    drag_enter(window.preview, green)
    QApplication.sendEvent(window.preview, link_only)
    assert link_only.isAccepted() and link_only.dropAction() == Qt.DropAction.LinkAction
