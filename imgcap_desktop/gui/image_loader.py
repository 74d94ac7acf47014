"""Thumbnails and previews decoded off the GUI thread, with a small cache.

Decoding a 12-megapixel JPEG takes long enough to stall scrolling, so a QThreadPool
does it; QImage (unlike QPixmap) is safe to build outside the GUI thread.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage



def pil_to_qimage(image) -> QImage:
    rgb = image.convert("RGB")
    data = rgb.tobytes()
    qimage = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888)
    # copy() detaches from the Python buffer, which is freed when `data` goes away.
    return qimage.copy()


def load_qimage(path: str | Path, max_side: int) -> QImage:
    """EXIF-oriented, aspect-kept image no larger than max_side; raises ImgcapError."""
    from imgcap_desktop.core.images import thumbnail

    return pil_to_qimage(thumbnail(Path(path), max_side))


class _Signals(QObject):
    loaded = Signal(str, int, QImage)
    load_failed = Signal(str, int, str)


class _LoadTask(QRunnable):
    def __init__(self, signals: _Signals, path: str, size: int):
        super().__init__()
        self.signals = signals
        self.path = path
        self.size = size

    def run(self) -> None:
        try:
            image = load_qimage(self.path, self.size)
        except Exception as exc:  # noqa: BLE001 - any decode problem is "no picture"
            self.signals.load_failed.emit(self.path, self.size, str(exc))
            return
        self.signals.loaded.emit(self.path, self.size, image)


class ImageLoader(QObject):
    """request(path, size) -> later `loaded(path, size, QImage)` or `load_failed(...)`."""

    loaded = Signal(str, int, QImage)
    load_failed = Signal(str, int, str)

    def __init__(self, parent: QObject | None = None, cache_size: int = 400, threads: int = 2):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        # Unparented and kept alive by the tasks' references: a task that finishes after
        # this loader is gone must not touch a deleted C++ object.
        self._signals = _Signals()
        self._signals.loaded.connect(self._on_loaded)
        self._signals.load_failed.connect(self._on_failed)
        self._cache: OrderedDict[tuple[str, int], QImage | None] = OrderedDict()
        self._pending: set[tuple[str, int]] = set()
        self._cache_size = cache_size

    def cached(self, path: str, size: int) -> QImage | None:
        """The image if decoded; None while pending, unknown or failed."""
        key = (path, size)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        return None

    def has_failed(self, path: str, size: int) -> bool:
        key = (path, size)
        return key in self._cache and self._cache[key] is None

    def request(self, path: str, size: int) -> QImage | None:
        key = (path, size)
        if key in self._cache:
            return self.cached(path, size)
        if key not in self._pending:
            self._pending.add(key)
            self._pool.start(_LoadTask(self._signals, path, size))
        return None

    def forget(self, path: str) -> None:
        for key in [k for k in self._cache if k[0] == path]:
            del self._cache[key]

    def shutdown(self, timeout_ms: int = 3000) -> None:
        self._pool.clear()
        self._pool.waitForDone(timeout_ms)

    def _store(self, key, image) -> None:
        self._pending.discard(key)
        self._cache[key] = image
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _on_loaded(self, path: str, size: int, image: QImage) -> None:
        self._store((path, size), image)
        self.loaded.emit(path, size, image)

    def _on_failed(self, path: str, size: int, message: str) -> None:
        self._store((path, size), None)
        self.load_failed.emit(path, size, message)
