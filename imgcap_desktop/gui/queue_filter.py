"""What the queue table shows: a search over names and captions, a status filter, and
header-click sorting, all without reordering the session's queue itself."""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel, Qt

from .queue_model import CANCELLED, DONE, FAILED, FOUND, SORT_ROLE, WAITING, QueueModel

#: (label, test) pairs for the status filter, in the order the combo box shows them; a test gets
#: the row and the queue (whose check_below the "To check" filter reads).
STATUS_FILTERS = (
    ("All photos", lambda row, queue: True),
    ("To check", lambda row, queue: row.needs_check(queue.check_below)),
    ("Unsaved", lambda row, queue: row.unsaved),
    ("Edited", lambda row, queue: row.edited),
    ("Captioned", lambda row, queue: row.status == DONE),
    ("Written before", lambda row, queue: row.status == FOUND),
    ("Not captioned", lambda row, queue: row.status in (WAITING, CANCELLED)),
    ("Failed", lambda row, queue: row.status == FAILED),
)


class QueueFilter(QSortFilterProxyModel):
    def __init__(self, queue: QueueModel, parent=None):
        super().__init__(parent)
        self.queue = queue
        self.setSourceModel(queue)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortLocaleAware(True)
        # Numbers for the confidence column, the text elsewhere (queue_model.SORT_ROLE).
        self.setSortRole(SORT_ROLE)
        # A caption edit or a new status re-tests the row ("Unsaved" rows leave when saved).
        self.setDynamicSortFilter(True)
        self._words: list[str] = []
        self._status = 0

    def set_search(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_words", text.casefold().split()))

    def set_status_filter(self, index: int) -> None:
        self._refilter(lambda: setattr(self, "_status", index if 0 <= index < len(STATUS_FILTERS) else 0))

    def _refilter(self, change) -> None:
        # Qt 6.10 replaced invalidateFilter() with a begin/end pair; the pins allow 6.6 to 6.11.
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    @property
    def active(self) -> bool:
        return bool(self._words) or self._status != 0

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:  # noqa: N802 - Qt API
        row = self.queue.rows[source_row]
        if not STATUS_FILTERS[self._status][1](row, self.queue):
            return False
        haystack = f"{row.name} {row.text} {row.error} {' '.join(row.current_keywords)}".casefold()
        return all(word in haystack for word in self._words)

    def source_row(self, proxy_row: int) -> int:
        return self.mapToSource(self.index(proxy_row, 0)).row()

    def proxy_row(self, source_row: int) -> int:
        return self.mapFromSource(self.queue.index(source_row, 0)).row()
