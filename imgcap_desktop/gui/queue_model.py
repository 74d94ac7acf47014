"""The batch queue: one row per photo with its status and (editable) caption."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QStyle

from .image_loader import ImageLoader

WAITING = "waiting"
CHECKING = "checking"   # just added: looking for a caption someone already wrote (sidecar, metadata)
FOUND = "found"         # such a caption was there: shown, never replaced unless asked
CAPTIONING = "captioning"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"

THUMB_SIZE = 64

COL_PHOTO, COL_STATUS, COL_CONFIDENCE, COL_CAPTION = range(4)
HEADERS = ("Photo", "Status", "Confidence", "Caption")
LAST_COL = len(HEADERS) - 1
#: Data role with a sortable number for the confidence column (no confidence sorts first).
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: Used until the model says what it suggests (its calibration's check_below).
DEFAULT_CHECK_BELOW = 0.5


@dataclass
class QueueRow:
    path: Path
    status: str = WAITING
    text: str = ""          # what will be saved: the model's caption or the user's edit
    caption: Any = None     # the engine's Caption (score, alternatives), if any
    error: str = ""
    edited: bool = False
    saved_text: str = ""    # the text last written somewhere (sidecar, the photo, an export)
    source: str = ""        # where a FOUND caption came from: "NAME.txt" or "the photo"
    keywords: tuple[str, ...] | None = None  # a person's keywords; None: the model's
    saved_keywords: tuple[str, ...] | None = None  # the keywords last written somewhere that keeps them

    @property
    def unsaved(self) -> bool:
        """A caption not written anywhere yet, or a person's keywords that were not."""
        if not self.text.strip():
            return False
        return self.text != self.saved_text or (self.keywords is not None and self.keywords != self.saved_keywords)

    @property
    def confidence(self) -> float | None:
        """The model's confidence in the caption shown; None once it is a person's words."""
        if self.caption is None or self.edited or self.text != getattr(self.caption, "text", None):
            return None
        return getattr(self.caption, "confidence", None)

    @property
    def current_keywords(self) -> tuple[str, ...]:
        if self.keywords is not None:
            return self.keywords
        return tuple(getattr(self.caption, "keywords", ()) or ())

    def keywords_to_write(self) -> tuple[str, ...] | None:
        """What to store as the photo's keywords: a person's (or those found with the photo), even
        none; the model's when there are some; None (keep what the file has) otherwise."""
        if self.keywords is not None:
            return self.keywords
        return tuple(getattr(self.caption, "keywords", ()) or ()) or None

    def needs_check(self, below: float) -> bool:
        value = self.confidence
        return value is not None and value < below

    @property
    def name(self) -> str:
        return self.path.name


class QueueModel(QAbstractTableModel):
    # A caption typed into a view's cell: the session decides (and can undo) the change.
    edit_requested = Signal(int, str)

    def __init__(self, loader: ImageLoader | None = None, parent=None):
        super().__init__(parent)
        self.rows: list[QueueRow] = []
        self._index_of: dict[str, int] = {}
        self._loader: ImageLoader | None = None
        self._icons: dict[str, QIcon] = {}
        self.check_below = DEFAULT_CHECK_BELOW
        # Whether the loaded model has a calibration: without one the column says why it is empty.
        self.calibrated = True
        if loader is not None:
            self.set_loader(loader)

    def set_loader(self, loader: ImageLoader) -> None:
        """Thumbnails come from ``loader`` (the view's): the session's queue has none of its own."""
        self._loader = loader
        loader.loaded.connect(self._on_image_loaded)
        loader.load_failed.connect(self._on_image_failed)

    # -- Qt model API --------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def set_check_below(self, value: float, calibrated: bool = True) -> None:
        self.check_below, self.calibrated = float(value), calibrated
        if self.rows:
            self.dataChanged.emit(self.index(0, COL_CONFIDENCE), self.index(len(self.rows) - 1, COL_CONFIDENCE))

    def _confidence_text(self, row: QueueRow) -> str:
        value = row.confidence
        if value is None:
            return ""
        return f"check  {100 * value:.0f}%" if value < self.check_below else f"{100 * value:.0f}%"

    def _confidence_tip(self, row: QueueRow) -> str:
        value = row.confidence
        if value is not None:
            advice = (f"below {100 * self.check_below:.0f}%: read this one first" if value < self.check_below
                      else "the estimated chance that this caption is a good one")
            return f"Confidence {100 * value:.0f}%: {advice}"
        if row.caption is not None and (row.edited or row.text != getattr(row.caption, "text", None)):
            return "Your caption: the model's confidence was for its own words"
        if row.caption is not None:
            return "This model has no calibration, so it gives no confidence"
        return ""

    def flags(self, index):
        base = super().flags(index)
        if index.isValid() and index.column() == COL_CAPTION:
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == COL_PHOTO:
                return row.name
            if column == COL_STATUS:
                return status_text(row)
            if column == COL_CONFIDENCE:
                return self._confidence_text(row)
            if column == COL_CAPTION:
                # A failed row has no caption: its reason takes the space, where it
                # can be read whole rather than squeezed into the status column.
                return row.text or row.error
        elif role == Qt.ItemDataRole.EditRole:
            if column == COL_CAPTION:
                return row.text
        elif role == Qt.ItemDataRole.ToolTipRole:
            if column == COL_PHOTO:
                return str(row.path)
            if row.error and column in (COL_STATUS, COL_CAPTION):
                return row.error
            if column == COL_CAPTION and row.text:
                return row.text
            if column == COL_STATUS:
                return status_text(row)  # "from holiday-042.jpg.txt" does not fit the column
            if column == COL_CONFIDENCE:
                return self._confidence_tip(row) or None
        elif role == Qt.ItemDataRole.ForegroundRole:
            if row.status == FAILED and column in (COL_STATUS, COL_CAPTION):
                return _error_colour()
            if column == COL_CONFIDENCE and row.needs_check(self.check_below):
                return _check_colour()
        elif role == Qt.ItemDataRole.DecorationRole and column == COL_PHOTO:
            return self._thumbnail(row)
        elif role == Qt.ItemDataRole.FontRole and column == COL_CONFIDENCE and row.needs_check(self.check_below):
            return _bold()
        elif role == Qt.ItemDataRole.TextAlignmentRole and column == COL_CONFIDENCE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif role == SORT_ROLE:
            if column == COL_CONFIDENCE:
                value = row.confidence
                return -1.0 if value is None else value
            return self.data(index, Qt.ItemDataRole.DisplayRole)
        return None

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if index.isValid() and index.column() == COL_CAPTION and role == Qt.ItemDataRole.EditRole:
            self.edit_requested.emit(index.row(), str(value))
            return True
        return False

    # -- queue API -----------------------------------------------------------------

    def add_paths(self, paths: Iterable[Path]) -> list[int]:
        """Appends photos not already queued; returns the new row numbers."""
        return self.add_rows(QueueRow(Path(p)) for p in paths)

    def add_rows(self, rows: Iterable[QueueRow]) -> list[int]:
        new: list[QueueRow] = []
        keys: set[str] = set()
        for row in rows:
            key = _key(row.path)
            if key in self._index_of or key in keys:
                continue
            keys.add(key)
            new.append(row)
        if not new:
            return []
        first = len(self.rows)
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        for offset, row in enumerate(new):
            self.rows.append(row)
            self._index_of[_key(row.path)] = first + offset
        self.endInsertRows()
        return list(range(first, first + len(new)))

    def clear(self) -> None:
        self.beginResetModel()
        self.rows.clear()
        self._index_of.clear()
        self.endResetModel()

    def insert_row(self, number: int, row: QueueRow) -> None:
        number = max(0, min(number, len(self.rows)))
        self.beginInsertRows(QModelIndex(), number, number)
        self.rows.insert(number, row)
        self.endInsertRows()
        self._index_of = {_key(r.path): i for i, r in enumerate(self.rows)}

    def remove_rows(self, numbers: Iterable[int]) -> None:
        for number in sorted(set(numbers), reverse=True):
            self.beginRemoveRows(QModelIndex(), number, number)
            del self.rows[number]
            self.endRemoveRows()
        self._index_of = {_key(r.path): i for i, r in enumerate(self.rows)}

    def row_of(self, path: str | Path) -> int:
        return self._index_of.get(_key(Path(path)), -1)

    def row(self, number: int) -> QueueRow:
        return self.rows[number]

    def set_status(self, number: int, status: str, error: str = "") -> None:
        row = self.rows[number]
        row.status = status
        row.error = error
        # The error text shows in the caption column and the warning icon in the photo column.
        self._changed(number, COL_PHOTO, LAST_COL)

    def set_state(self, number: int, *, text: str, edited: bool, caption, status: str) -> None:
        row = self.rows[number]
        row.text, row.edited, row.caption, row.status = text, edited, caption, status
        if status == DONE:
            row.error = ""
        self._changed(number, COL_PHOTO, LAST_COL)

    def set_keywords(self, number: int, keywords: tuple[str, ...] | None) -> None:
        self.rows[number].keywords = keywords
        self._changed(number, COL_CAPTION, COL_CAPTION)

    def numbers_with_status(self, *statuses: str) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r.status in statuses]

    def captioned(self) -> list[QueueRow]:
        return [r for r in self.rows if r.text.strip()]

    def unsaved(self) -> list[QueueRow]:
        return [r for r in self.rows if r.unsaved]

    # -- thumbnails ----------------------------------------------------------------

    def _thumbnail(self, row: QueueRow):
        key = str(row.path)
        if key in self._icons:
            return self._icons[key]
        if self._loader is None:
            return None
        if self._loader.has_failed(key, THUMB_SIZE):
            return _broken_icon()
        image = self._loader.request(key, THUMB_SIZE)
        if image is not None:
            self._icons[key] = QIcon(QPixmap.fromImage(image))
            return self._icons[key]
        return None

    def _on_image_loaded(self, path: str, size: int, image: QImage) -> None:
        if size == THUMB_SIZE:
            self._icons[path] = QIcon(QPixmap.fromImage(image))
            self._refresh_photo(path)

    def _on_image_failed(self, path: str, size: int, message: str) -> None:
        if size == THUMB_SIZE:
            self._refresh_photo(path)

    def _refresh_photo(self, path: str) -> None:
        number = self.row_of(path)
        if number >= 0:
            self._changed(number, COL_PHOTO, COL_PHOTO)

    def _changed(self, number: int, first: int, last: int) -> None:
        self.dataChanged.emit(self.index(number, first), self.index(number, last))


def status_text(row: QueueRow) -> str:
    if row.status == DONE and row.edited:
        return "done (edited)"
    if row.status == FOUND:
        return f"from {row.source}" + (" (edited)" if row.edited else "")
    return row.status


def _key(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path.absolute())


def _error_colour() -> QColor:
    # Readable on both light and dark palettes.
    dark = QApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128
    return QColor("#ef9a9a" if dark else "#b3261e")


def _check_colour() -> QColor:
    dark = QApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128
    return QColor("#ffcc80" if dark else "#9a4f00")


def _bold() -> QFont:
    font = QFont(QApplication.font())
    font.setBold(True)
    return font


def _broken_icon() -> QIcon:
    style = QApplication.style()
    return style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning) if style else QIcon()

