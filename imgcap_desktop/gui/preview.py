"""The large preview that doubles as the drop target, like the old web page's box."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget


PLACEHOLDER = "Drop photos or folders here, or click to open"


def accept_as_copy(event) -> None:
    """Accept a drag or drop as a Copy (or a Link), never as the Move a source may propose.

    A file manager that is answered MoveAction deletes the originals after the drop.
    """
    possible = event.possibleActions()
    link_only = not possible & Qt.DropAction.CopyAction and possible & Qt.DropAction.LinkAction
    event.setDropAction(Qt.DropAction.LinkAction if link_only else Qt.DropAction.CopyAction)
    event.accept()


def local_paths(mime) -> list[Path]:
    """Local files and folders carried by a drag or the clipboard."""
    if mime is None or not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


class PreviewWidget(QWidget):
    paths_dropped = Signal(list)      # list[Path]
    image_dropped = Signal(QImage)    # raw image data dragged from a browser, say
    clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setMinimumSize(320, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setToolTip("Drop photos or folders here, or click to open (Ctrl+O)")
        self._pixmap: QPixmap | None = None
        self._scaled: QPixmap | None = None
        self._message = PLACEHOLDER
        self._dragging = False

    # -- state -----------------------------------------------------------------------

    @property
    def dragging(self) -> bool:
        return self._dragging

    @property
    def message(self) -> str:
        return self._message

    def has_image(self) -> bool:
        return self._pixmap is not None

    def set_image(self, image: QImage | None) -> None:
        self._pixmap = QPixmap.fromImage(image) if image is not None and not image.isNull() else None
        self._scaled = None
        self._message = "" if self._pixmap is not None else self._message
        self.update()

    def set_message(self, text: str) -> None:
        """Shown instead of the photo (placeholder, "Loading…", a load error)."""
        self._pixmap = None
        self._scaled = None
        self._message = text
        self.update()

    def clear(self) -> None:
        self.set_message(PLACEHOLDER)

    def sizeHint(self) -> QSize:
        return QSize(620, 420)  # the old page's preview box

    # -- painting --------------------------------------------------------------------

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        frame = QRectF(self.rect()).adjusted(4, 4, -4, -4)
        if self._pixmap is None or self._dragging:
            fill = palette.color(QPalette.ColorRole.Base)
            if self._dragging:
                highlight = palette.color(QPalette.ColorRole.Highlight)
                fill = QColor(highlight.red(), highlight.green(), highlight.blue(), 40)
            painter.setBrush(fill)
            colour = palette.color(
                QPalette.ColorRole.Highlight if self._dragging else QPalette.ColorRole.Mid
            )
            pen = QPen(colour, 3 if self._dragging else 2, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRoundedRect(frame, 12, 12)
        if self._pixmap is not None:
            target = self._scaled_pixmap(frame.size().toSize())
            x = frame.x() + (frame.width() - target.width()) / 2
            y = frame.y() + (frame.height() - target.height()) / 2
            painter.drawPixmap(int(x), int(y), target)
        text = "Drop to add" if self._dragging else self._message
        if text and (self._pixmap is None or self._dragging):
            font = painter.font()
            font.setPointSizeF(font.pointSizeF() * 1.35)
            painter.setFont(font)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(frame.adjusted(16, 16, -16, -16), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
        painter.end()

    def _scaled_pixmap(self, size: QSize) -> QPixmap:
        ratio = self.devicePixelRatioF()
        wanted = QSize(int(size.width() * ratio), int(size.height() * ratio))
        if self._scaled is None or self._scaled.size() != self._pixmap.size().scaled(wanted, Qt.AspectRatioMode.KeepAspectRatio):
            self._scaled = self._pixmap.scaled(
                wanted, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            self._scaled.setDevicePixelRatio(ratio)
        return self._scaled

    def resizeEvent(self, event) -> None:
        self._scaled = None
        super().resizeEvent(event)

    # -- input -------------------------------------------------------------------------

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(event.position().toPoint()):
            self.clicked.emit()
        super().mouseReleaseEvent(event)

    def _acceptable(self, mime) -> bool:
        return bool(local_paths(mime)) or (mime is not None and mime.hasImage())

    def dragEnterEvent(self, event) -> None:
        if self._acceptable(event.mimeData()):
            accept_as_copy(event)
            self._set_dragging(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if self._acceptable(event.mimeData()):
            accept_as_copy(event)
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self._set_dragging(False)
        event.accept()

    def dropEvent(self, event) -> None:
        self._set_dragging(False)
        mime = event.mimeData()
        paths = local_paths(mime)
        if paths:
            accept_as_copy(event)
            self.paths_dropped.emit(paths)
        elif mime is not None and mime.hasImage():
            data = mime.imageData()
            image = data.toImage() if isinstance(data, QPixmap) else QImage(data)
            if image.isNull():
                event.ignore()
                return
            accept_as_copy(event)
            self.image_dropped.emit(image)
        else:
            event.ignore()

    def _set_dragging(self, value: bool) -> None:
        if self._dragging != value:
            self._dragging = value
            self.update()
