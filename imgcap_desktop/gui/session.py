"""The caption session: the queue, the worker thread, the job lifecycle, saving and undo.

A widget-free QObject. It is in ``gui/`` and not a Qt-free class in ``core/`` because
what it coordinates is Qt already: the worker lives in a QThread and reports through
queued signals, the queue is a QAbstractTableModel that views show, and undo is a
QUndoStack that menus and shortcuts drive. A Qt-free core with an adapter would copy each
of these once more. What has to be Qt-free, the file on disk, is: ``core.session_store``.

``MainWindow`` is a view of this object: it calls its methods and shows its signals.
Questions that need a person (replace this file?) come in as callbacks, so the session
runs in tests with no window at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QLockFile, QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from imgcap_desktop.core.errors import ImgcapError
from imgcap_desktop.core.options import DecodeOptions
from imgcap_desktop.core.session_store import SessionStore, StoredPhoto, StoreError

from .queue_model import CANCELLED, CAPTIONING, CHECKING, DONE, FAILED, FOUND, WAITING, QueueModel, QueueRow
from .worker import Loader, Worker, WorkerThread, default_loader

# Answers of the "replace this caption file?" question.
YES, NO, YES_ALL, NO_ALL = "yes", "no", "yes_all", "no_all"
AskOverwrite = Callable[[Path, Path, bool], str]  # (sidecar, photo, many) -> answer

STORE_NAME = "session{}.sqlite3"
MAX_SLOTS = 16


@dataclass
class SaveReport:
    saved: int = 0
    skipped: int = 0
    errors: list[str] | None = None
    attempted: int = 0

    def __post_init__(self):
        self.errors = [] if self.errors is None else self.errors


class CaptionSession(QObject):
    model_loading = Signal()
    model_ready = Signal(str)
    model_failed = Signal(str)
    job_started = Signal(int)
    job_progress = Signal(int, int, float)     # done, total, seconds per photo
    job_stopped = Signal(str)                  # the whole job failed: one sentence
    job_finished = Signal(str, bool)           # summary, whether it ended without a job-wide error
    state_changed = Signal()                   # busy/loading/model or queue contents changed
    store_failed = Signal(str)                 # the queue is no longer being saved to disk
    checked = Signal()                         # every added photo was looked at for an existing caption

    request_load = Signal(object)
    request_caption = Signal(list, object)

    def __init__(self, loader: Loader = default_loader, *, store_folder: Path | None = None,
                 decode_options: Callable[[], DecodeOptions] = DecodeOptions, parent: QObject | None = None):
        super().__init__(parent)
        self.queue = QueueModel(parent=self)
        self.undo_stack = QUndoStack(self)
        self.decode_options = decode_options
        self.model_name: str | None = None
        # The loaded model's worker.model_info(): calibrated, check_below, attention.
        self.model_info: dict = {}
        self.loading = False
        self.job_running = False
        self.job_error = ""
        self._job_paths: list[str] = []
        self._job_before: dict[str, str] = {}
        self._job_done = 0
        self._job_failed = 0
        self._job_started_at = 0.0
        self._shut_down = False

        self.store: SessionStore | None = None
        self._lock: QLockFile | None = None
        self.store_error = ""
        self.restorable: list[StoredPhoto] = []
        if store_folder is not None:
            self._open_store(Path(store_folder))

        self.worker = Worker(loader)
        self._thread = WorkerThread(self.worker)
        self.request_load.connect(self.worker.load_model)
        self.request_caption.connect(self.worker.caption)
        self.worker.model_loading.connect(lambda _label: self.model_loading.emit())
        self.worker.model_info.connect(self._on_model_info)
        self.worker.model_ready.connect(self._on_model_ready)
        self.worker.model_failed.connect(self._on_model_failed)
        self.worker.started.connect(self._on_started)
        self.worker.progress.connect(self._on_progress)
        self.worker.result.connect(self._on_result)
        self.worker.failed.connect(self._on_failed)
        self.worker.finished.connect(self._on_finished)
        self.queue.edit_requested.connect(self.edit)

        # Looking for captions people already wrote reads files (a sidecar, the photo's
        # metadata): off the GUI thread, one at a time, since it is disk-bound.
        self._lookups = QThreadPool(self)
        self._lookups.setMaxThreadCount(1)
        self._lookup_signals = _LookupSignals()
        self._lookup_signals.found.connect(self._on_found)
        self._pending_lookups = 0

    # ------------------------------------------------------------------ state

    @property
    def model_is_ready(self) -> bool:
        return self.model_name is not None

    @property
    def idle(self) -> bool:
        return not self.job_running and not self.loading

    @property
    def checking(self) -> bool:
        return self._pending_lookups > 0

    # ------------------------------------------------------------------ the file on disk

    def _open_store(self, folder: Path) -> None:
        """Take the first session file no other running instance holds, then fold in the
        queues that earlier instances left in the others, so that none is stranded."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            own = None
            for slot in range(MAX_SLOTS):
                lock = QLockFile(str(folder / (STORE_NAME.format(_suffix(slot)) + ".lock")))
                lock.setStaleLockTime(0)  # a lock is stale only when its process is gone
                if lock.tryLock(0):
                    own = slot
                    self._lock = lock
                    break
            if own is None:
                raise StoreError(f"{MAX_SLOTS} instances of the app already hold session files in {folder}.")
            self.store = SessionStore(folder / STORE_NAME.format(_suffix(own)))
            self.restorable = self.store.photos()
            self._adopt_orphans(folder, own)
        except StoreError as exc:
            self._store_broke(str(exc))

    def _adopt_orphans(self, folder: Path, own: int) -> None:
        known = {p.path for p in self.restorable}
        for slot in range(MAX_SLOTS):
            if slot == own:
                continue
            path = folder / STORE_NAME.format(_suffix(slot))
            if not path.exists():
                continue
            lock = QLockFile(str(path) + ".lock")
            lock.setStaleLockTime(0)
            if not lock.tryLock(0):
                continue  # another running instance's queue
            try:
                other = SessionStore(path)
                photos = [p for p in other.photos() if p.path not in known]
                other.close()
                if photos:
                    self.store.add(photos)
                    self.restorable.extend(photos)
                    known.update(p.path for p in photos)
                for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    leftover.unlink(missing_ok=True)
            except (StoreError, OSError):
                pass  # left where it is; a later launch tries again
            finally:
                lock.unlock()

    def _persist(self, action: Callable[[SessionStore], None]) -> None:
        if self.store is None:
            return
        try:
            action(self.store)
        except StoreError as exc:
            self._store_broke(str(exc))

    def _store_broke(self, message: str) -> None:
        self.store_error = message
        if self.store is not None:
            try:
                self.store.close()
            except Exception:  # noqa: BLE001 - closing a broken file must not raise again
                pass
        self.store = None
        self.store_failed.emit(message)

    def restore(self) -> int:
        """Put the queue from the last run back; returns how many photos came back."""
        photos, self.restorable = self.restorable, []
        rows = []
        for photo in photos:
            # A photo being captioned when the app stopped is simply waiting again.
            status = WAITING if photo.status == CAPTIONING else photo.status
            rows.append(QueueRow(Path(photo.path), status=status, text=photo.text, caption=photo.caption,
                                 error=photo.error, edited=photo.edited, saved_text=photo.saved_text,
                                 source=photo.source, keywords=photo.keywords,
                                 saved_keywords=photo.saved_keywords))
        added = self.queue.add_rows(rows)
        self._look_up([self.queue.row(n) for n in added if self.queue.row(n).status == CHECKING])
        self.state_changed.emit()
        return len(added)

    def discard_restorable(self) -> None:
        self.restorable = []
        self.forget()

    def forget(self) -> None:
        """Empty the file on disk (the queue on screen stays): a person chose to discard."""
        self._persist(lambda store: store.clear())

    # ------------------------------------------------------------------ the queue

    def add_paths(self, paths: list[Path]) -> list[int]:
        """Queue photos; each is first looked at for a caption someone already wrote (``checked``
        follows), so that such a caption is shown instead of being replaced by the model's."""
        numbers = self.queue.add_rows(QueueRow(Path(p), status=CHECKING) for p in paths)
        if numbers:
            rows = [self.queue.row(n) for n in numbers]
            self._persist(lambda store: store.add(StoredPhoto(str(r.path), r.status) for r in rows))
            self._look_up(rows)
            self.state_changed.emit()
        return numbers

    def _look_up(self, rows: list[QueueRow]) -> None:
        if not rows:
            return
        self._pending_lookups += len(rows)
        self._lookups.start(_LookupTask(self._lookup_signals, [str(r.path) for r in rows]))

    def _on_found(self, path: str, text: str, source: str, keywords: tuple = ()) -> None:
        self._pending_lookups = max(self._pending_lookups - 1, 0)
        number = self.queue.row_of(path)
        if number >= 0 and self.queue.row(number).status == CHECKING:
            row = self.queue.row(number)
            if keywords:
                # Someone's keywords (a sidecar's or the photo's own) win over the model's, like a
                # caption, and are already saved where they were found.
                row.saved_keywords = tuple(keywords)
                self.queue.set_keywords(number, tuple(keywords))
                self._persist(lambda store: store.update(path, keywords=tuple(keywords),
                                                         saved_keywords=tuple(keywords)))
            if text:
                # Already saved where it was found: not an unsaved caption.
                row.saved_text, row.source = text, source
                self.queue.set_state(number, text=text, edited=False, caption=None, status=FOUND)
                self._persist(lambda store: store.update(path, status=FOUND, text=text, saved_text=text,
                                                         source=source))
            else:
                self._set_status(number, WAITING)
        self.state_changed.emit()
        if not self._pending_lookups:
            self.checked.emit()

    def remove(self, numbers: list[int]) -> None:
        numbers = sorted({n for n in numbers if 0 <= n < self.queue.rowCount()})
        if numbers and not self.job_running:
            self.undo_stack.push(_RemoveRows(self, numbers))

    def clear(self) -> None:
        self.remove(list(range(self.queue.rowCount())))

    def edit(self, number: int, text: str, *, typing: bool = False) -> None:
        """A person's change to a caption: undoable, and on disk at once. Keystrokes
        (``typing``) in one caption in a row make one undo step."""
        row = self.queue.row(number)
        if text != row.text:
            self.undo_stack.push(_SetCaption(self, row, text=text, edited=True, caption=row.caption, typing=typing))

    def set_keywords(self, number: int, keywords: tuple[str, ...]) -> None:
        """A person's keywords for a photo (replacing the model's): undoable, and on disk at once."""
        row = self.queue.row(number)
        keywords = tuple(keywords)
        if keywords != row.current_keywords:
            self.undo_stack.push(_SetKeywords(self, row, keywords))

    def _apply_keywords(self, path: Path, keywords: tuple[str, ...] | None) -> None:
        number = self.queue.row_of(path)
        if number < 0:
            return
        self.queue.set_keywords(number, keywords)
        self._persist(lambda store: store.update(str(path), keywords=keywords))
        self.state_changed.emit()

    def rewrite(self, numbers: list[int], *, find: str = "", replace: str = "", prefix: str = "",
                suffix: str = "") -> int:
        """Find/replace, then prefix and suffix, on the captions of ``numbers`` (dataset builders add
        trigger words this way); one undo step. Returns how many captions changed."""
        changes = []
        for number in numbers:
            old = self.queue.row(number).text
            if not old.strip():
                continue  # no caption yet: nothing to add words to
            text = old.replace(find, replace) if find else old
            if prefix and not text.startswith(prefix):
                text = prefix + text
            if suffix and not text.endswith(suffix):
                text = text + suffix
            if text != old:
                changes.append((number, text))
        if changes:  # an empty macro would still be an undo step that does nothing
            self.undo_stack.beginMacro(f"Change {len(changes)} caption{'s' if len(changes) != 1 else ''}")
            try:
                for number, text in changes:
                    self.edit(number, text)
            finally:
                self.undo_stack.endMacro()
        return len(changes)

    def _apply(self, path: Path, text: str, edited: bool, caption, status: str) -> None:
        number = self.queue.row_of(path)
        if number < 0:
            return
        self.queue.set_state(number, text=text, edited=edited, caption=caption, status=status)
        error = self.queue.row(number).error
        self._persist(lambda store: store.update(str(path), text=text, edited=edited, caption=caption,
                                                 status=status, error=error))
        self.state_changed.emit()

    # ------------------------------------------------------------------ the model

    def load_model(self, source: str | None) -> bool:
        if not self.idle:
            return False
        self.loading = True
        self.state_changed.emit()
        self.request_load.emit(source or None)
        return True

    def _on_model_info(self, info: dict) -> None:
        self.model_info = dict(info)

    def _on_model_ready(self, name: str) -> None:
        self.loading = False
        self.model_name = name
        self.model_ready.emit(name)
        self.state_changed.emit()

    def _on_model_failed(self, message: str) -> None:
        self.loading = False
        self.model_failed.emit(message)
        self.state_changed.emit()

    # ------------------------------------------------------------------ captioning

    def start_job(self, numbers: list[int]) -> bool:
        if not numbers or not self.idle or not self.model_is_ready:
            return False
        self._job_paths = [str(self.queue.row(n).path) for n in numbers]
        # What each photo was before the job, so that undoing a new caption restores it exactly.
        self._job_before = {str(self.queue.row(n).path): self.queue.row(n).status for n in numbers}
        self._job_done = 0
        self._job_failed = 0
        self.job_error = ""
        for n in numbers:
            self._set_status(n, WAITING)
        self._set_status(numbers[0], CAPTIONING)
        # Busy from here until the worker's finished signal, never sooner.
        self.job_running = True
        self.state_changed.emit()
        self.worker.clear_cancel()
        self.request_caption.emit(list(self._job_paths), self.decode_options())
        return True

    def cancel(self) -> bool:
        if self.job_running:
            # Straight to the flag: a queued call would only run after the job.
            self.worker.cancel()
        return self.job_running

    def _set_status(self, number: int, status: str, error: str = "") -> None:
        self.queue.set_status(number, status, error)
        path = str(self.queue.row(number).path)
        self._persist(lambda store: store.update(path, status=status, error=error))

    def _on_started(self, total: int) -> None:
        self._job_started_at = time.monotonic()
        self.job_started.emit(total)

    def _on_progress(self, done: int, total: int) -> None:
        self._job_done = done
        if done < len(self._job_paths):
            number = self.queue.row_of(self._job_paths[done])
            if number >= 0 and self.queue.row(number).status == WAITING:
                self._set_status(number, CAPTIONING)
        per_photo = (time.monotonic() - self._job_started_at) / done if done else 0.0
        self.job_progress.emit(done, total, per_photo)

    def _on_result(self, path: str, caption) -> None:
        number = self.queue.row_of(path)
        if number < 0:
            return
        row = self.queue.row(number)
        before = self._job_before.get(path, row.status)
        if (row.edited or before == FOUND) and row.text.strip() and row.text != caption.text:
            # A new caption over a person's words (an edit, or a caption found with the photo):
            # undo brings them back.
            self.undo_stack.push(_SetCaption(self, row, text=caption.text, edited=False, caption=caption,
                                             status=DONE, label=f"Caption {row.name} again", before_status=before))
        else:
            self._apply(row.path, caption.text, False, caption, DONE)

    def _on_failed(self, path: str, message: str) -> None:
        if not path:
            self.job_error = message
            self.job_stopped.emit(message)
            return
        self._job_failed += 1
        number = self.queue.row_of(path)
        if number >= 0:
            self._set_status(number, FAILED, message)
        self.state_changed.emit()

    def _on_finished(self, cancelled: bool) -> None:
        for path in self._job_paths:
            number = self.queue.row_of(path)
            if number >= 0 and self.queue.row(number).status in (WAITING, CAPTIONING):
                if cancelled:
                    self._set_status(number, CANCELLED)
                else:
                    # Failed (not waiting) so that captioning on open cannot retry it forever.
                    self._set_status(number, FAILED, self.job_error or "Not captioned.")
        elapsed = time.monotonic() - self._job_started_at if self._job_started_at else 0.0
        # The worker's progress counts photos tried; the ones that failed are not "captioned".
        failed = self._job_failed
        captioned = max(self._job_done - failed, 0)
        also = f", {failed} failed" if failed else ""
        if cancelled:
            message = f"Cancelled: {captioned} of {len(self._job_paths)} photos captioned{also}"
        elif self.job_error:
            message = f"Captioning stopped: {self.job_error}"
        else:
            message = f"Captioned {captioned} photo{'s' if captioned != 1 else ''}{also} in {elapsed:.1f} s"
        self.job_running = False
        self._job_paths = []
        self.state_changed.emit()
        self.job_finished.emit(message, not cancelled and not self.job_error)

    # ------------------------------------------------------------------ saving

    def mark_saved(self, rows: list[QueueRow], *, keywords: bool = True) -> None:
        """``rows`` were written somewhere; ``keywords``: somewhere that keeps keywords too."""
        for row in rows:
            row.saved_text = row.text
            if keywords:
                row.saved_keywords = row.keywords
        self._persist(lambda store: [store.update(str(r.path), saved_text=r.saved_text,
                                                  saved_keywords=r.saved_keywords) for r in rows])
        self.state_changed.emit()

    def save_sidecars(self, rows: list[QueueRow], *, policy: str, ask: AskOverwrite, kind: str = "txt",
                      suffix: str = ".txt", xmp_naming: str = "full") -> SaveReport:
        """A caption file (NAME.txt or NAME.caption) and/or an XMP sidecar beside each photo; an
        existing caption there is kept, replaced or asked about (``policy``)."""
        from imgcap_desktop.core import xmp_sidecar
        from imgcap_desktop.core.errors import SidecarExistsError
        from imgcap_desktop.core.export import sidecar_path, write_sidecar
        from imgcap_desktop.core.records import one_line

        def txt(row, overwrite):
            if not overwrite:
                try:
                    write_sidecar(row.path, row.text, suffix=suffix)
                    return None
                except SidecarExistsError:
                    return sidecar_path(row.path, suffix)
            write_sidecar(row.path, row.text, overwrite=True, suffix=suffix)
            return None

        def xmp(row, overwrite):
            target = xmp_sidecar.target_for(row.path, xmp_naming)
            found = xmp_sidecar.sidecar_description(target)
            if found and not overwrite and found[0] != one_line(row.text):
                return target
            xmp_sidecar.write_sidecar(row.path, one_line(row.text), row.keywords_to_write(), naming=xmp_naming)
            return None

        writers = {"txt": [txt], "xmp": [xmp], "txt+xmp": [txt, xmp]}[kind]
        report = SaveReport()
        for_all: str | None = None
        many = len(rows) > 1
        saved: list[QueueRow] = []
        for row in rows:
            done = True
            skipped = False
            for write in writers:
                try:
                    conflict = write(row, False)
                    if conflict is None:
                        continue
                    if policy == "skip" or for_all == NO_ALL:
                        skipped, done = True, False
                        continue
                    overwrite = policy == "overwrite" or for_all == YES_ALL
                    if not overwrite:
                        answer = ask(conflict, row.path, many)
                        if answer in (YES_ALL, NO_ALL):
                            for_all = answer
                        overwrite = answer in (YES, YES_ALL)
                    if not overwrite:
                        skipped, done = True, False
                        continue
                    write(row, True)
                except (ImgcapError, OSError, ValueError) as exc:
                    report.errors.append(str(exc))
                    done = False
            report.skipped += skipped
            if done:
                saved.append(row)
        report.saved = len(saved)
        report.attempted = len(rows)
        self.mark_saved(saved, keywords="xmp" in kind)
        return report

    def write_descriptions(self, rows: list[QueueRow], step: Callable[[int], bool] | None = None) -> SaveReport:
        """Each caption into its photo's EXIF/XMP/IPTC description. ``step(done)`` returns
        False to stop (the rest are left as they were)."""
        from imgcap_desktop.core.metadata import write_description
        from imgcap_desktop.core.records import one_line

        report = SaveReport()
        written: list[QueueRow] = []
        for row in rows:
            if step is not None and not step(report.attempted):
                break
            try:
                write_description(row.path, one_line(row.text), row.keywords_to_write())
                written.append(row)
            except (ImgcapError, OSError, ValueError) as exc:
                report.errors.append(str(exc))
            report.attempted += 1
        if step is not None:
            step(report.attempted)
        report.saved = len(written)
        self.mark_saved(written)
        return report

    def exportable(self) -> list[QueueRow]:
        return [r for r in self.queue.rows if r.text.strip() or r.status == FAILED]

    def export(self, target: Path) -> None:
        """Every captioned or failed photo in the one record schema (core.records); raises on failure."""
        from imgcap_desktop.core.export import export_csv, export_jsonl

        rows = self.exportable()
        records = [record_of(r) for r in rows]
        if target.suffix.lower() == ".jsonl":
            export_jsonl(records, target)
        else:
            export_csv(records, target)
        self.mark_saved([r for r in rows if r.text.strip()])

    def export_dataset(self, layout: str, target: Path):
        """The captioned photos as a training set (core.dataset_layouts); returns its report."""
        from imgcap_desktop.core.dataset_layouts import write_dataset

        rows = [r for r in self.queue.captioned()]
        report = write_dataset(layout, [record_of(r) for r in rows], target)
        left = {os.path.abspath(p) for p in report.left_out_paths}
        self.mark_saved([r for r in rows if os.path.abspath(r.path) not in left], keywords=layout == "hf")
        return report

    # ------------------------------------------------------------------ the end

    def shutdown(self) -> None:
        """Stop the worker thread and close the file; safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        self.worker.cancel()
        self._thread.stop()
        self._lookups.clear()
        self._lookups.waitForDone(5000)
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._lock is not None:
            self._lock.unlock()


class _LookupSignals(QObject):
    found = Signal(str, str, str, object)   # path, text ("" for none), where it was found, keywords


class _LookupTask(QRunnable):
    def __init__(self, signals: _LookupSignals, paths: list[str]):
        super().__init__()
        self.signals = signals
        self.paths = paths

    def run(self) -> None:
        from imgcap_desktop.core.writers import already_written

        for path in self.paths:
            try:
                found, words = already_written(Path(path))
            except Exception:  # noqa: BLE001 - a lookup must never cost the photo its place
                found, words = None, ()
            self.signals.found.emit(path, *(found or ("", "")), tuple(words))


def record_of(row: QueueRow) -> dict:
    from imgcap_desktop.core.records import make_record

    return make_record(row.path, caption=row.caption, text=row.text, edited=row.edited,
                       error=row.error or None, status=row.status, keywords=row.current_keywords)


def _suffix(slot: int) -> str:
    return "" if slot == 0 else f"-{slot + 1}"


class _SetCaption(QUndoCommand):
    """One caption change; consecutive keystrokes in one photo's caption merge into one step."""

    MERGE_ID = 1

    def __init__(self, session: CaptionSession, row: QueueRow, *, text: str, edited: bool, caption,
                 status: str | None = None, typing: bool = False, label: str = "", before_status: str | None = None):
        super().__init__(label or f"Edit caption of {row.name}")
        self.session = session
        self.path = row.path
        self.before = (row.text, row.edited, row.caption, before_status or row.status)
        self.after = (text, edited, caption, status or row.status)
        self.typing = typing

    def id(self) -> int:
        return self.MERGE_ID if self.typing else -1

    def mergeWith(self, other) -> bool:
        if not isinstance(other, _SetCaption) or other.path != self.path or not other.typing:
            return False
        self.after = other.after
        return True

    def redo(self) -> None:
        self.session._apply(self.path, *self.after)

    def undo(self) -> None:
        self.session._apply(self.path, *self.before)


class _SetKeywords(QUndoCommand):
    def __init__(self, session: CaptionSession, row: QueueRow, keywords: tuple[str, ...]):
        super().__init__(f"Edit keywords of {row.name}")
        self.session = session
        self.path = row.path
        self.before, self.after = row.keywords, keywords

    def redo(self) -> None:
        self.session._apply_keywords(self.path, self.after)

    def undo(self) -> None:
        self.session._apply_keywords(self.path, self.before)


class _RemoveRows(QUndoCommand):
    def __init__(self, session: CaptionSession, numbers: list[int]):
        count = len(numbers)
        super().__init__(f"Remove {count} photo{'s' if count != 1 else ''}")
        self.session = session
        self.removed = [(n, session.queue.row(n)) for n in numbers]

    def redo(self) -> None:
        queue = self.session.queue
        paths = [str(row.path) for _, row in self.removed]
        queue.remove_rows([queue.row_of(p) for p in paths if queue.row_of(p) >= 0])
        self.session._persist(lambda store: store.remove(paths))
        self.session.state_changed.emit()

    def undo(self) -> None:
        queue = self.session.queue
        for number, row in self.removed:  # ascending, so each goes back where it was
            queue.insert_row(number, row)
        self.session._persist(lambda store: (
            store.add(StoredPhoto(str(r.path), r.status, r.text, r.saved_text, r.edited, r.error, r.caption, r.source,
                                  r.keywords, r.saved_keywords)
                      for _, r in self.removed),
            store.renumber(str(r.path) for r in queue.rows)))
        self.session.state_changed.emit()
