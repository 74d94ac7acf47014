"""The shown photo at full size: click the preview to open, scroll or drag to look around."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

ZOOM_SIZE = 8192  # the longest side the zoom view asks the image loader for
STEPS = (0.1, 0.25, 0.33, 0.5, 0.67, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


class ZoomDialog(QDialog):
    def __init__(self, title: str, image: QImage, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("zoom")
        self.setWindowTitle(title)
        self._image = image
        self._scale = 1.0
        self._fit = True

        self.label = QLabel()
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.area = QScrollArea()
        self.area.setWidget(self.label)
        self.area.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.area.setWidgetResizable(False)

        self.zoom_label = QLabel()
        buttons = QHBoxLayout()
        for text, slot, keys in (("Fit", self.fit, "0"), ("100 %", lambda: self.set_scale(1.0), "1"),
                                 ("−", self.zoom_out, QKeySequence.StandardKey.ZoomOut),
                                 ("+", self.zoom_in, QKeySequence.StandardKey.ZoomIn)):
            button = QPushButton(text)
            button.setAutoDefault(False)
            button.clicked.connect(slot)
            buttons.addWidget(button)
            QShortcut(QKeySequence(keys), self, activated=slot)
        QShortcut(QKeySequence("+"), self, activated=self.zoom_in)
        QShortcut(QKeySequence("-"), self, activated=self.zoom_out)
        buttons.addStretch(1)
        buttons.addWidget(self.zoom_label)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addWidget(self.area, 1)
        layout.addLayout(buttons)
        screen = self.screen().availableGeometry() if self.screen() else None
        if screen is not None:
            self.resize(int(screen.width() * 0.8), int(screen.height() * 0.8))

    @property
    def scale(self) -> float:
        return self._scale

    def set_image(self, image: QImage) -> None:
        """A sharper copy arrived (the preview's is smaller than the photo)."""
        self._image = image
        self._show()

    def fit(self) -> None:
        self._fit = True
        self._show()

    def set_scale(self, scale: float) -> None:
        self._fit = False
        self._scale = max(STEPS[0], min(scale, STEPS[-1]))
        self._show()

    def zoom_in(self) -> None:
        self.set_scale(next((s for s in STEPS if s > self._scale + 1e-6), STEPS[-1]))

    def zoom_out(self) -> None:
        self.set_scale(next((s for s in reversed(STEPS) if s < self._scale - 1e-6), STEPS[0]))

    def _show(self) -> None:
        image = self._image
        if image.isNull():
            return
        if self._fit:
            room = self.area.viewport().size()
            self._scale = min(1.0, room.width() / image.width(), room.height() / image.height())
        size = image.size() * self._scale
        pixmap = QPixmap.fromImage(image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                Qt.TransformationMode.SmoothTransformation))
        self.label.setPixmap(pixmap)
        self.label.resize(pixmap.size())
        self.zoom_label.setText(f"{self._scale * 100:.0f} %  ·  {image.width()} × {image.height()}")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._show()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit:
            self._show()
