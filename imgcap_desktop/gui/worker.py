"""The one long-lived object that owns the Captioner, living in its own QThread.

TensorFlow is imported only when the first model loads, inside this thread, so the
window is on screen long before the engine is.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any, Callable, Protocol

from PySide6.QtCore import QObject, QThread, Signal, Slot

from imgcap_desktop.core.options import DecodeOptions

class CaptionerLike(Protocol):
    name: str
    description: str

    def caption_paths(self, paths, *, beam=0, max_length=0, batch_size=8, length_penalty=None,
                      keyword_guide=None, cancelled=None): ...


Loader = Callable[[Any], CaptionerLike]


def default_loader(source: str | Path | None) -> CaptionerLike:
    # importlib keeps static analysers and packagers from treating the engine as a
    # GUI-time import; it runs in the worker thread on the first load.
    module = importlib.import_module("imgcap_desktop.core.captioner")
    return module.Captioner.load(source or None)


def user_message(exc: BaseException) -> str:
    """One sentence for the user; engine errors already are one."""
    from imgcap_desktop.core.errors import ImgcapError

    if isinstance(exc, ImgcapError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def model_info(captioner: CaptionerLike) -> dict:
    """What the window shows about a model beside its name (a test double may have none of it)."""
    calibration = getattr(captioner, "calibration", None)
    return {"calibrated": calibration is not None,
            "check_below": getattr(calibration, "check_below", None),
            "attention": bool(getattr(captioner, "has_attention", False))}


class Worker(QObject):
    model_loading = Signal(str)
    model_info = Signal(object)   # dict from model_info(), just before model_ready
    model_ready = Signal(str)
    model_failed = Signal(str)
    started = Signal(int)
    progress = Signal(int, int)
    result = Signal(str, object)
    failed = Signal(str, str)
    finished = Signal(bool)

    def __init__(self, loader: Loader = default_loader, parent: QObject | None = None):
        super().__init__(parent)
        self._loader = loader
        self._captioner: CaptionerLike | None = None
        # Set from the GUI thread directly: a queued "cancel" would wait behind the job.
        self._cancel = threading.Event()

    # -- called from the GUI thread ------------------------------------------------

    def cancel(self) -> None:
        self._cancel.set()

    def clear_cancel(self) -> None:
        """Called by the GUI just before it queues a job, so a Cancel pressed while the
        job waits in the queue still counts."""
        self._cancel.clear()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def has_model(self) -> bool:
        return self._captioner is not None

    # -- slots, run in the worker thread -----------------------------------------

    @Slot(object)
    def load_model(self, source: str | Path | None) -> None:
        self.model_loading.emit(str(source) if source else "default model")
        try:
            captioner = self._loader(source or None)
        except BaseException as exc:  # noqa: BLE001 - a dead worker thread is worse
            # The previous model (if any) stays loaded and usable.
            self.model_failed.emit(user_message(exc))
            return
        self._captioner = captioner
        self.model_info.emit(model_info(captioner))
        self.model_ready.emit(getattr(captioner, "name", "") or "model")

    @Slot(list, object)
    def caption(self, paths: list, options: DecodeOptions) -> None:
        total = len(paths)
        done = 0
        self.started.emit(total)
        try:
            if self._captioner is None:
                raise RuntimeError("No model is loaded yet.")
            results = self._captioner.caption_paths(
                [Path(p) for p in paths], cancelled=self._cancel.is_set, **options.as_kwargs()
            )
            for item in results:
                done += 1
                path = str(item.path) if item.path is not None else ""
                if item.caption is not None:
                    self.result.emit(path, item.caption)
                else:
                    self.failed.emit(path, item.error or "Captioning failed.")
                self.progress.emit(done, total)
        except BaseException as exc:  # noqa: BLE001 - report, never kill the thread
            self.failed.emit("", user_message(exc))
        finally:
            self.finished.emit(self._cancel.is_set() and done < total)


WORKER_STACK_BYTES = 64 * 1024 * 1024


class WorkerThread:
    """Starts a Worker in a QThread and stops it cleanly (no running thread destroyed)."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName("imgcap-worker")
        # TensorFlow traces deep Keras graphs (DenseNet201: hundreds of layers) with
        # deep C++ recursion; a thread's default stack (as small as 2 MiB) overflows
        # and segfaults there, where the main thread's 8 MiB did not.
        self.thread.setStackSize(WORKER_STACK_BYTES)
        worker.moveToThread(self.thread)
        self.thread.start()

    def stop(self, timeout_ms: int | None = None) -> bool:
        self.worker.cancel()
        self.thread.quit()
        # A model load cannot be interrupted; waiting for it is better than a crash.
        finished = self.thread.wait() if timeout_ms is None else self.thread.wait(timeout_ms)
        return bool(finished)
