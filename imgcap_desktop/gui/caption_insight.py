"""How far to trust the shown caption: its confidence, its keywords (editable), and the words
whose attention can be drawn over the preview, one at a time or as a strip of maps."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from imgcap_desktop.core import keywords as keyword_text
from imgcap_desktop.core.attention_maps import WordMap, grid_of, strip, word_maps

from .image_loader import pil_to_qimage
from .queue_model import QueueRow

NO_ATTENTION = ("This model has no spatial attention: it reads the whole photo as one vector, "
                "so it cannot show where it looked for each word.")
NO_CALIBRATION = "This model has no calibration, so it gives no confidence for its captions."


def maps_of(row: QueueRow | None) -> list[WordMap]:
    """One map per word of the model's caption of ``row``; empty without attention."""
    caption = getattr(row, "caption", None)
    attention = getattr(caption, "attention", None)
    if attention is None or not len(attention):
        return []
    grid = grid_of(np.asarray(attention))
    if grid is None:
        return []
    return word_maps(caption.text.split(), attention, grid)


def qimage_to_pil(image: QImage):
    from PIL import Image

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    data = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    return Image.fromarray(np.ascontiguousarray(data[:, : 3 * width]).reshape(height, width, 3), "RGB")


class _HoverFilter(QObject):
    """Tells the bar which word the pointer is over (and when it leaves)."""

    def __init__(self, bar: "CaptionInsight"):
        super().__init__(bar)
        self.bar = bar

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Enter:
            self.bar._hover(watched.property("word_index"))
        elif event.type() == QEvent.Type.Leave:
            self.bar._hover(None)
        return False


class CaptionInsight(QWidget):
    """Below the caption: confidence, keywords, and the words to look at."""

    #: The word to draw over the preview (its index in the model's caption), or -1 for none.
    word_shown = Signal(int)
    #: A person changed the keywords (parsed, in their order).
    keywords_edited = Signal(tuple)
    #: The "Every word" toggle: show the strip of maps instead of the preview.
    strip_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.confidence = QLabel()
        self.confidence.setObjectName("confidence")
        self.confidence.setWordWrap(True)
        self.keywords = QLineEdit()
        self.keywords.setObjectName("keywords")
        self.keywords.setPlaceholderText("Keywords, separated by commas")
        self.keywords.setToolTip("Keywords from the encoder's ImageNet classes, likeliest first; edit them "
                                 "like the caption. They are saved into the photo (XMP dc:subject) and in exports.")
        self.keywords.editingFinished.connect(self._on_keywords_done)
        keywords_label = QLabel("&Keywords:")
        keywords_label.setBuddy(self.keywords)
        keyword_row = QHBoxLayout()
        keyword_row.setContentsMargins(0, 0, 0, 0)
        keyword_row.addWidget(keywords_label)
        keyword_row.addWidget(self.keywords, 1)

        self.words_label = QLabel("Where it looked:")
        self.words_label.setToolTip("Point at a word to see where the model looked for it; click to keep it shown")
        self.words = QWidget()
        self.words.setObjectName("words")
        self.words_layout = QHBoxLayout(self.words)
        self.words_layout.setContentsMargins(0, 0, 0, 0)
        self.words_layout.setSpacing(2)
        # A long caption scrolls sideways rather than widening the window.
        self.words_scroll = QScrollArea()
        self.words_scroll.setWidget(self.words)
        self.words_scroll.setWidgetResizable(True)
        self.words_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.words_scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.words_scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.every_word = QToolButton()
        self.every_word.setObjectName("every-word")
        self.every_word.setText("Every word")
        self.every_word.setCheckable(True)
        self.every_word.setToolTip("Show every word's map as a strip instead of the photo")
        self.every_word.toggled.connect(self.strip_toggled)
        self.no_attention = QLabel(NO_ATTENTION)
        self.no_attention.setObjectName("no-attention")
        self.no_attention.setWordWrap(True)
        self.no_attention.setEnabled(False)
        word_row = QHBoxLayout()
        word_row.setContentsMargins(0, 0, 0, 0)
        word_row.addWidget(self.words_label)
        word_row.addWidget(self.words_scroll, 1)
        word_row.addWidget(self.every_word)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.confidence)
        layout.addLayout(keyword_row)
        layout.addLayout(word_row)
        layout.addWidget(self.no_attention)

        self._hover_filter = _HoverFilter(self)
        self._buttons: list[QToolButton] = []
        self._pinned = -1
        self._hovered: int | None = None
        self._shown_keywords: tuple[str, ...] = ()
        self._caption = object()
        self.maps: list[WordMap] = []
        self.show_row(None, {}, 0.5)

    # -- what is shown ---------------------------------------------------------------

    def show_row(self, row: QueueRow | None, model_info: dict, check_below: float) -> None:
        self._show_confidence(row, model_info, check_below)
        before = self._shown_keywords
        self._shown_keywords = row.current_keywords if row is not None else ()
        # What is being typed stays; a field nobody has typed in shows the row's keywords.
        untouched = keyword_text.parse(self.keywords.text()) == before
        if not self.keywords.hasFocus() or row is None or untouched:
            self.keywords.setText(keyword_text.join(self._shown_keywords))
        self.keywords.setEnabled(row is not None and bool(row.text.strip()))
        caption = getattr(row, "caption", None)
        if caption is not self._caption:  # a pinned word stays pinned while the same caption shows
            self._caption = caption
            self._set_words(maps_of(row))
        maps = self.maps
        has_caption = row is not None and row.caption is not None
        no_attention = has_caption and not maps and not model_info.get("attention", True)
        self.no_attention.setVisible(no_attention)
        for widget in (self.words_label, self.words_scroll, self.every_word):
            widget.setVisible(bool(maps))
        if not maps and self.every_word.isChecked():
            self.every_word.setChecked(False)

    def _show_confidence(self, row: QueueRow | None, model_info: dict, check_below: float) -> None:
        label = self.confidence
        value = row.confidence if row is not None else None
        if row is None or row.caption is None:
            label.setText("")
            label.setVisible(False)
            return
        label.setVisible(True)
        if value is not None:
            percent = f"{100 * value:.0f}%"
            if value < check_below:
                label.setText(f"<b>Confidence {percent}</b> &mdash; <span style='color:#9a4f00'><b>check</b> this "
                              f"caption</span> (below your {100 * check_below:.0f}% line)")
            else:
                label.setText(f"Confidence <b>{percent}</b>: the estimated chance that this caption is a good one")
        elif row.edited or row.text != row.caption.text:
            label.setText("Your caption: the model's confidence was for its own words")
        elif not model_info.get("calibrated", True) or getattr(row.caption, "confidence", None) is None:
            label.setText(NO_CALIBRATION)
        else:
            label.setText("")

    def _set_words(self, maps: list[WordMap]) -> None:
        while self.words_layout.count():
            item = self.words_layout.takeAt(0)
            if item.widget() is not None:
                # Hidden at once: deleteLater waits for the event loop, and the old words must not show.
                item.widget().hide()
                item.widget().deleteLater()
        self._buttons = []
        self.maps = maps
        self._pinned, self._hovered = -1, None
        for i, m in enumerate(maps):
            button = QToolButton(self.words)
            button.setText(m.word)
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setProperty("word_index", i)
            button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            button.installEventFilter(self._hover_filter)
            button.clicked.connect(lambda checked, i=i: self._pin(i if checked else -1))
            self.words_layout.addWidget(button)
            self._buttons.append(button)
        self.words_layout.addStretch(1)
        # One row of buttons, plus room for the sideways scroll bar when it shows.
        height = max((b.sizeHint().height() for b in self._buttons), default=24)
        self.words_scroll.setFixedHeight(height + self.words_scroll.horizontalScrollBar().sizeHint().height() + 2)
        self.word_shown.emit(-1)

    @property
    def buttons(self) -> list[QToolButton]:
        return list(self._buttons)

    # -- choosing a word -------------------------------------------------------------

    def _pin(self, index: int) -> None:
        self._pinned = index
        for i, button in enumerate(self._buttons):
            button.setChecked(i == index)
        self._emit()

    def _hover(self, index) -> None:
        self._hovered = None if index is None else int(index)
        self._emit()

    def current_word(self) -> int:
        """The word drawn over the preview now: the one pointed at, else the one clicked, else -1."""
        return self._hovered if self._hovered is not None else self._pinned

    def _emit(self) -> None:
        self.word_shown.emit(self.current_word())

    def _on_keywords_done(self) -> None:
        words = keyword_text.parse(self.keywords.text())
        if words != self._shown_keywords:
            self._shown_keywords = words
            self.keywords_edited.emit(words)


class StripView(QScrollArea):
    """Every word's map over a small copy of the photo (core.attention_maps.strip)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("attention-strip")
        self.setWidgetResizable(False)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWidget(self.label)
        self._shown: tuple | None = None

    def show_maps(self, photo: QImage | None, maps: list[WordMap]) -> None:
        if photo is None or photo.isNull() or not maps:
            self._shown = None
            self.label.setText("Select a captioned photo to see every word's map.")
            self.label.adjustSize()
            return
        # Each status change of the shown photo refreshes the panel: draw the sheet only when
        # the photo, its words or the room for them changed.
        key = (photo.cacheKey(), self.viewport().size().toTuple())
        if self._shown is not None and self._shown[0] == key and self._shown[1] is maps:
            return
        self._shown = (key, maps)  # the list itself, not its id: a new caption's list is a new object
        # The largest tiles with which every word is in view at once (scrolling only if none fit).
        width, height = self.viewport().width() - 16, self.viewport().height() - 8
        aspect = min(photo.height(), photo.width()) / max(photo.height(), photo.width())
        best = (90, 6)
        for per_row in range(2, 9):
            tile = width // per_row - 8
            rows = -(-len(maps) // per_row)
            if tile >= 90 and rows * (tile * aspect + 40) + 50 <= height and tile > best[0]:
                best = (tile, per_row)
        sheet = strip(qimage_to_pil(photo), maps, tile=best[0], per_row=best[1])
        self.label.setPixmap(QPixmap.fromImage(pil_to_qimage(sheet)))
        self.label.adjustSize()
