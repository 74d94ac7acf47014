"""The large preview that doubles as the drop target, like the old web page's box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

from imgcap_desktop.core.attention_maps import legend, overlay_rgba


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
        # Where the model looked for one word: (rows, cols) grid weights, the word, a detail line.
        self._overlay: tuple[np.ndarray, str, str] | None = None
        self._overlay_image: tuple[tuple[int, int], QImage] | None = None
        self._photo_rect = QRect()

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
        self._overlay = self._overlay_image = None
        self._message = "" if self._pixmap is not None else self._message
        self.update()

    def set_message(self, text: str) -> None:
        """Shown instead of the photo (placeholder, "Loading…", a load error)."""
        self._pixmap = None
        self._scaled = None
        self._overlay = self._overlay_image = None
        self._message = text
        self.update()

    def clear(self) -> None:
        self.set_message(PLACEHOLDER)

    def set_overlay(self, grid: np.ndarray | None, word: str = "", detail: str = "") -> None:
        """Draw one word's attention grid over the photo as shown (None: the photo alone)."""
        self._overlay = None if grid is None else (np.asarray(grid, dtype=np.float64), word, detail)
        self._overlay_image = None
        self.update()

    @property
    def overlay_word(self) -> str | None:
        return self._overlay[1] if self._overlay is not None else None

    def photo_rect(self) -> QRect:
        """Where the photo is drawn, in widget coordinates (empty without a photo)."""
        return QRect(self._photo_rect) if self._pixmap is not None else QRect()

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
            logical = target.deviceIndependentSize().toSize()
            self._photo_rect = QRect(int(x), int(y), logical.width(), logical.height())
            if self._overlay is not None and not self._dragging:
                self._paint_overlay(painter, target)
        text = "Drop to add" if self._dragging else self._message
        if text and (self._pixmap is None or self._dragging):
            font = painter.font()
            font.setPointSizeF(font.pointSizeF() * 1.35)
            painter.setFont(font)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(frame.adjusted(16, 16, -16, -16), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
        painter.end()

    def _paint_overlay(self, painter: QPainter, target: QPixmap) -> None:
        grid, word, detail = self._overlay
        size = (target.width(), target.height())  # device pixels: the map is as sharp as the photo
        if self._overlay_image is None or self._overlay_image[0] != size:
            rgba = np.ascontiguousarray(overlay_rgba(grid, size))
            image = QImage(rgba.data, size[0], size[1], 4 * size[0], QImage.Format.Format_RGBA8888).copy()
            self._overlay_image = (size, image)
        painter.drawImage(self._photo_rect, self._overlay_image[1])
        # The legend: which word, how to read the colours, how much weight the grid held.
        metrics = painter.fontMetrics()
        lines = [f"Where the model looked for \u201c{word}\u201d"] + ([detail] if detail else [])
        width = max(180, *(metrics.horizontalAdvance(t) for t in lines)) + 20
        height = metrics.height() * (len(lines) + 1) + 22
        box = QRect(self._photo_rect.left() + 8, self._photo_rect.bottom() - height - 8, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(box, 6, 6)
        painter.setPen(QColor("white"))
        y = box.top() + 8
        for text in lines:
            painter.drawText(box.left() + 10, y + metrics.ascent(), text)
            y += metrics.height()
        bar = legend(width - 20, 8)
        bar_image = QImage(np.ascontiguousarray(bar).data, bar.shape[1], bar.shape[0], 3 * bar.shape[1],
                           QImage.Format.Format_RGB888).copy()
        painter.drawImage(box.left() + 10, y + 4, bar_image)
        small = metrics.height() - 2
        painter.drawText(QRect(box.left() + 10, y + 12, width - 20, small + 4), Qt.AlignmentFlag.AlignLeft, "least")
        painter.drawText(QRect(box.left() + 10, y + 12, width - 20, small + 4), Qt.AlignmentFlag.AlignRight, "most")

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
