"""The main window: preview + caption for one photo, the queue beside it for many."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QFont, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QStyle,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from imgcap_desktop.core.errors import ImgcapError

from . import dialogs
from .image_loader import ImageLoader
from .paths import cache_dir, resource_path
from .preview import PLACEHOLDER, PreviewWidget, accept_as_copy, local_paths
from .queue_model import (
    CANCELLED,
    CAPTIONING,
    COL_CAPTION,
    COL_PHOTO,
    COL_STATUS,
    DONE,
    FAILED,
    THUMB_SIZE,
    WAITING,
    QueueModel,
    QueueRow,
)
from .settings import Settings
from .worker import Loader, Worker, WorkerThread, default_loader

PREVIEW_SIZE = 1600
APP_TITLE = "Image Caption"


def app_icon() -> QIcon:
    icon = QIcon()
    for name in ("imgcap.svg", "imgcap-256.png"):
        path = resource_path("icons", name)
        if path.exists():
            icon.addFile(str(path))
    return icon


def themed_icon(theme_name: str, fallback: QStyle.StandardPixmap) -> QIcon:
    """The desktop theme's icon where there is one, Qt's built-in one otherwise."""
    style = QApplication.style()
    return QIcon.fromTheme(theme_name, style.standardIcon(fallback))


class MainWindow(QMainWindow):
    request_load = Signal(object)
    request_caption = Signal(list, dict)
    shown = Signal()

    def __init__(
        self,
        settings: Settings | None = None,
        loader: Loader = default_loader,
        *,
        threaded: bool = True,
        load_on_start: bool = True,
    ):
        super().__init__()
        self.settings = settings if settings is not None else Settings()
        # Photos added while the model is ready and idle are captioned at once, as the
        # old page did after Upload + Predict; set False to queue without captioning.
        self.auto_caption = True

        self._model_name: str | None = None
        self._loading = False
        self._job_running = False
        self._job_paths: list[str] = []
        self._job_done = 0
        self._job_failed = 0
        self._pending_model: str | None = None   # asked for, saved in the settings once it loads
        self._job_error = ""
        self._job_started_at = 0.0
        self._current = -1
        self._updating_field = False
        self._shut_down = False
        self._shown_once = False

        self.image_loader = ImageLoader(self)
        self.queue = QueueModel(self.image_loader, self)
        self.worker = Worker(loader)
        # Without a thread the worker's slots run synchronously inside emit(): tests
        # use that to drive it step by step.
        self._worker_thread = WorkerThread(self.worker) if threaded else None

        self.setWindowTitle(APP_TITLE)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_ui()
        self._build_menus()
        self._connect()
        self._restore_window()
        self._update_actions()
        if load_on_start:
            # After the window is up: the first load imports TensorFlow (seconds).
            QTimer.singleShot(0, self.load_model)

    # ------------------------------------------------------------------ building

    def _action(self, text, slot, shortcut=None, icon=None, tip=None) -> QAction:
        action = QAction(text, self)
        if icon is not None:
            action.setIcon(icon)
        if shortcut:
            shortcuts = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
            keys = ", ".join(QKeySequence(s).toString(QKeySequence.SequenceFormat.NativeText) for s in shortcuts)
            action.setToolTip(f"{tip or text.replace('&', '').rstrip('…')} ({keys})")
        elif tip:
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        SP = QStyle.StandardPixmap
        self.act_open = self._action("&Open…", self.open_files, "Ctrl+O", themed_icon("document-open", SP.SP_DialogOpenButton), "Open photos")
        self.act_open_folder = self._action("Open &Folder…", self.open_folder, "Ctrl+Shift+O", themed_icon("folder-open", SP.SP_DirOpenIcon), "Open a folder of photos")
        self.act_paste = self._action("&Paste Photos", self.paste, "Ctrl+V", themed_icon("edit-paste", SP.SP_FileDialogContentsView), "Paste an image or a list of files")
        self.act_caption = self._action("&Caption", self.caption_current, ["Ctrl+Return", "Ctrl+Enter"], themed_icon("media-playback-start", SP.SP_MediaPlay), "Caption this photo")
        self.act_caption_all = self._action("Caption &All", self.caption_all, ["Ctrl+Shift+Return", "Ctrl+Shift+Enter"], themed_icon("media-seek-forward", SP.SP_MediaSeekForward), "Caption every photo not yet captioned")
        self.act_cancel = self._action("Ca&ncel", self.cancel, "Esc", themed_icon("process-stop", SP.SP_BrowserStop), "Stop after the current photo")
        self.act_copy = self._action("Copy as Alt &Text", self.copy_caption, "Ctrl+Shift+C", themed_icon("edit-copy", SP.SP_FileLinkIcon), "Copy the caption as alt text")
        self.act_save = self._action("&Save Sidecar", self.save_sidecar, "Ctrl+S", themed_icon("document-save", SP.SP_DialogSaveButton), "Save the caption to NAME.txt beside the photo")
        self.act_save_all = self._action("Save A&ll Sidecars", self.save_all_sidecars, "Ctrl+Shift+S", themed_icon("document-save-all", SP.SP_DriveHDIcon), "Save every caption to NAME.txt files")
        self.act_write = self._action("&Write into Photo", self.write_into_photo, "Ctrl+Shift+W", themed_icon("document-edit", SP.SP_FileDialogDetailedView), "Write the caption into the photo's EXIF/XMP description")
        self.act_write_all = self._action("Write All into P&hotos", self.write_all_into_photos, "Ctrl+Alt+W", themed_icon("document-edit", SP.SP_FileDialogDetailedView), "Write every caption into its photo's EXIF/XMP description")
        self.act_export = self._action("&Export CSV / JSONL…", self.export, "Ctrl+E", themed_icon("document-export", SP.SP_ArrowDown), "Export the queue's captions")
        self.act_model = self._action("Open &Model Folder…", self.open_model_folder, "Ctrl+Shift+M", themed_icon("folder", SP.SP_DirIcon), "Load a model bundle or the old image_caption.h5 + tokenizer.pkl")
        self.act_settings = self._action("Se&ttings…", self.open_settings, "Ctrl+,", themed_icon("preferences-system", SP.SP_FileDialogListView), "Beam width, caption length, model")
        self.act_remove = self._action("&Remove from Queue", self.remove_selected, "Del", themed_icon("list-remove", SP.SP_TrashIcon))
        self.act_clear = self._action("C&lear Queue", self.clear_queue, "Ctrl+Shift+Del", themed_icon("edit-clear", SP.SP_DialogResetButton))
        self.act_quit = self._action("&Quit", self.close, "Ctrl+Q", themed_icon("application-exit", SP.SP_DialogCloseButton))
        # The window-level actions must not steal Ctrl+V / Del from the caption editor:
        # a focused text field claims standard keys first through ShortcutOverride.
        self.work_actions = (
            self.act_caption, self.act_caption_all, self.act_save_all, self.act_write, self.act_write_all,
            self.act_export, self.act_model, self.act_settings,
        )

    def _build_ui(self) -> None:
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(20, 20))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for item in (self.act_open, self.act_open_folder, None, self.act_caption_all, self.act_cancel,
                     None, self.act_save_all, self.act_export, None, self.act_settings):
            if item is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(item)

        # Left: the single-photo path.
        self.preview = PreviewWidget()
        self.caption_edit = QPlainTextEdit()
        self.caption_edit.setObjectName("caption")
        self.caption_edit.setPlaceholderText("The caption appears here. Edit it before copying or saving.")
        font = QFont(self.caption_edit.font())
        font.setPointSizeF(font.pointSizeF() * 1.45)
        self.caption_edit.setFont(font)
        line = self.caption_edit.fontMetrics().lineSpacing()
        self.caption_edit.setFixedHeight(int(line * 3.2 + 16))
        self.caption_edit.setTabChangesFocus(True)
        self.caption_edit.setEnabled(False)

        self.alternatives_label = QLabel("Alternatives (click one to use it):")
        self.alternatives = QListWidget()
        self.alternatives.setObjectName("alternatives")
        self.alternatives.setMaximumHeight(int(self.alternatives.fontMetrics().lineSpacing() * 4.6))
        self.alternatives.setToolTip("Beam search's other candidates, best first, with their log-probability")
        self.alternatives_label.setVisible(False)
        self.alternatives.setVisible(False)

        buttons = QHBoxLayout()
        for action in (self.act_caption, self.act_copy, self.act_save, self.act_write):
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setAutoRaise(False)
            buttons.addWidget(button)
        buttons.addStretch(1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(8, 8, 4, 8)
        left_layout.addWidget(self.preview, 1)
        left_layout.addWidget(self.caption_edit)
        left_layout.addWidget(self.alternatives_label)
        left_layout.addWidget(self.alternatives)
        left_layout.addLayout(buttons)

        # Right: the queue.
        self.table = QTableView()
        self.table.setObjectName("queue")
        self.table.setModel(self.queue)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed | QAbstractItemView.EditTrigger.DoubleClicked)
        self.table.setIconSize(QSize(THUMB_SIZE - 8, THUMB_SIZE - 8))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB_SIZE)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_PHOTO, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_STATUS, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_CAPTION, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(COL_PHOTO, 190)
        self.table.setColumnWidth(COL_STATUS, 96)
        self.queue_label = QLabel("Queue is empty")

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 8, 8, 8)
        right_layout.addWidget(self.queue_label)
        right_layout.addWidget(self.table, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("main-splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)

        status = self.statusBar()
        self.model_label = QLabel("Loading model…")
        self.progress_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setTextVisible(False)
        self.speed_label = QLabel("")
        for widget in (self.progress_label, self.progress_bar, self.speed_label):
            widget.setVisible(False)
        status.addPermanentWidget(self.progress_label)
        status.addPermanentWidget(self.progress_bar)
        status.addPermanentWidget(self.speed_label)
        status.addPermanentWidget(self.model_label)
        self.resize(1240, 800)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions([self.act_open, self.act_open_folder])
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addMenu(self.recent_menu)
        file_menu.addAction(self.act_paste)
        file_menu.addSeparator()
        file_menu.addActions([self.act_save, self.act_save_all, self.act_write, self.act_write_all, self.act_export])
        file_menu.addSeparator()
        file_menu.addAction(self.act_model)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        caption_menu = menu.addMenu("&Caption")
        caption_menu.addActions([self.act_caption, self.act_caption_all, self.act_cancel])
        caption_menu.addSeparator()
        caption_menu.addActions([self.act_copy, self.act_remove, self.act_clear])
        caption_menu.addSeparator()
        caption_menu.addAction(self.act_settings)

    def _connect(self) -> None:
        self.request_load.connect(self.worker.load_model)
        self.request_caption.connect(self.worker.caption)
        self.worker.model_loading.connect(self._on_model_loading)
        self.worker.model_ready.connect(self._on_model_ready)
        self.worker.model_failed.connect(self._on_model_failed)
        self.worker.started.connect(self._on_started)
        self.worker.progress.connect(self._on_progress)
        self.worker.result.connect(self._on_result)
        self.worker.failed.connect(self._on_failed)
        self.worker.finished.connect(self._on_finished)

        self.preview.paths_dropped.connect(self.add_paths)
        self.preview.image_dropped.connect(self.add_image)
        self.preview.clicked.connect(self.open_files)
        self.caption_edit.textChanged.connect(self._on_caption_edited)
        self.alternatives.itemClicked.connect(self._on_alternative_clicked)
        self.alternatives.itemActivated.connect(self._on_alternative_clicked)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row_changed)
        self.queue.dataChanged.connect(self._on_queue_changed)
        self.queue.rowsInserted.connect(self._on_queue_size_changed)
        self.queue.rowsRemoved.connect(self._on_queue_size_changed)
        self.queue.modelReset.connect(self._on_queue_size_changed)
        self.image_loader.loaded.connect(self._on_image_loaded)
        self.image_loader.load_failed.connect(self._on_image_failed)

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        return self._job_running

    @property
    def model_ready(self) -> bool:
        return self._model_name is not None

    def current_row(self) -> QueueRow | None:
        if 0 <= self._current < self.queue.rowCount():
            return self.queue.row(self._current)
        return None

    def _update_actions(self) -> None:
        idle = not self._job_running and not self._loading
        ready = self.model_ready
        row = self.current_row()
        has_rows = self.queue.rowCount() > 0
        has_text = row is not None and bool(row.text.strip())
        any_text = any(r.text.strip() for r in self.queue.rows)
        self.act_caption.setEnabled(idle and ready and row is not None)
        self.act_caption_all.setEnabled(idle and ready and has_rows)
        self.act_cancel.setEnabled(self._job_running)
        self.act_model.setEnabled(idle)
        self.act_settings.setEnabled(idle)
        self.act_copy.setEnabled(has_text)
        self.act_save.setEnabled(has_text)
        self.act_save_all.setEnabled(idle and any_text)
        self.act_write.setEnabled(idle and has_text)
        self.act_write_all.setEnabled(idle and any_text)
        self.act_export.setEnabled(idle and any_text)
        self.act_remove.setEnabled(not self._job_running and has_rows)
        self.act_clear.setEnabled(not self._job_running and has_rows)
        self.caption_edit.setEnabled(row is not None)

    # ------------------------------------------------------------------ model

    def load_model(self, source: str | None = None) -> None:
        """Ask the worker to load `source` (or the configured model)."""
        if self._job_running or self._loading:
            return
        if source is None:
            source = self.settings.get("model_path") or ""
        self._loading = True
        self.model_label.setText("Loading model…")
        self.statusBar().showMessage("Loading model…")
        self._update_actions()
        self.request_load.emit(source or None)

    def _on_model_loading(self, label: str) -> None:
        self.model_label.setText("Loading model…")
        self.model_label.setToolTip(label)

    def _on_model_ready(self, name: str) -> None:
        self._loading = False
        self._model_name = name
        if self._pending_model is not None:
            # Only a folder that loaded becomes the saved model and a recent entry.
            self.settings.set("model_path", self._pending_model)
            if self._pending_model:
                self.settings.add_recent("recent_models", self._pending_model)
            self._pending_model = None
        self.model_label.setText(f"Model: {name}")
        self.model_label.setToolTip(name)
        self.statusBar().showMessage("Model ready", 4000)
        self._update_actions()
        self._maybe_auto_caption()

    def _on_model_failed(self, message: str) -> None:
        self._loading = False
        if self._pending_model:
            self.settings.remove_recent("recent_models", self._pending_model)
        self._pending_model = None
        # The model that was loaded before (if any) is still the one captioning: say so.
        self.model_label.setText(f"Model: {self._model_name}" if self._model_name else "No model")
        self.model_label.setToolTip(message)
        self.statusBar().showMessage(f"Model not loaded: {message}")
        self._update_actions()
        dialogs.show_error(self, "Model not loaded", message)

    def open_model_folder(self) -> None:
        folder = dialogs.choose_model_folder(self, self.settings.get("model_path") or self.settings.get("last_folder"))
        if folder:
            self.change_model(folder)

    def change_model(self, source: str) -> None:
        if self._job_running or self._loading:
            return
        self._pending_model = source
        self.load_model(source)

    def open_settings(self) -> None:
        dialog = dialogs.SettingsDialog(self.settings.all(), self)
        if dialog.exec() != dialogs.SettingsDialog.DialogCode.Accepted:
            return
        self.apply_settings(dialog.values())

    def apply_settings(self, values: dict) -> None:
        old_model = self.settings.get("model_path")
        for name in ("beam", "max_length", "batch_size", "sidecar_overwrite"):
            if name in values:
                self.settings.set(name, values[name])
        new_model = values.get("model_path", old_model) or ""
        if new_model != old_model or not self.model_ready:
            self.change_model(new_model)

    # ------------------------------------------------------------------ adding photos

    def open_files(self) -> None:
        from imgcap_desktop.core.images import IMAGE_EXTENSIONS

        patterns = " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS))
        files, _ = dialogs.QFileDialog.getOpenFileNames(
            self, "Open photos", self.settings.get("last_folder"), f"Images ({patterns});;All files (*)"
        )
        if files:
            self.add_paths([Path(f) for f in files])

    def open_folder(self) -> None:
        folder = dialogs.QFileDialog.getExistingDirectory(self, "Open a folder of photos", self.settings.get("last_folder"))
        if folder:
            self.add_paths([Path(folder)])

    def open_recent(self, entry: str) -> None:
        self.add_paths([Path(entry)])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        entries = self.settings.get("recent_files")
        for entry in entries:
            action = self.recent_menu.addAction(entry)
            action.triggered.connect(lambda _=False, e=entry: self.open_recent(e))
        if not entries:
            self.recent_menu.addAction("No recent photos").setEnabled(False)

    def add_paths(self, paths) -> list[int]:
        """Queue photos and folders (walked); returns the new row numbers."""
        from imgcap_desktop.core.images import collect_images

        paths = [Path(p) for p in paths]
        if not paths:
            return []
        collected = collect_images(paths)
        new_rows = self.queue.add_paths(collected.images)
        parts = [f"Added {len(new_rows)} photo{'s' if len(new_rows) != 1 else ''}"]
        already = len(collected.images) - len(new_rows)
        if already:
            parts.append(f"{already} already in the queue")
        if collected.skipped:
            parts.append(f"skipped {len(collected.skipped)} non-image file{'s' if len(collected.skipped) != 1 else ''}")
        unreadable = getattr(collected, "unreadable_folders", [])
        if unreadable:
            parts.append(f"{len(unreadable)} folder{'s' if len(unreadable) != 1 else ''} could not be read")
        self.statusBar().showMessage(", ".join(parts), 8000)

        for path in reversed(paths):
            if not str(path).startswith(str(cache_dir())):
                self.settings.add_recent("recent_files", str(path))
        first = paths[0]
        self.settings.set("last_folder", str(first if first.is_dir() else first.parent))

        if new_rows and (self._current < 0 or len(paths) == 1):
            self.select_row(new_rows[0])
        self._update_actions()
        self._maybe_auto_caption()
        return new_rows

    def add_image(self, image: QImage) -> list[int]:
        """Queue raw image data (pasted or dragged from a browser) via a cached PNG."""
        folder = cache_dir("pasted")
        target = folder / f"pasted-{datetime.now():%Y%m%d-%H%M%S-%f}.png"
        if not image.save(str(target), "PNG"):
            dialogs.show_error(self, "Cannot paste", f"Could not save the pasted image to {folder}.")
            return []
        return self.add_paths([target])

    def paste(self) -> None:
        mime = QApplication.clipboard().mimeData()
        paths = local_paths(mime)
        if not paths and mime is not None and mime.hasText():
            for line in mime.text().splitlines():
                line = line.strip()
                if not line:
                    continue
                candidate = Path(QUrl(line).toLocalFile()) if line.startswith("file:") else Path(line)
                if candidate.exists():
                    paths.append(candidate)
        if paths:
            self.add_paths(paths)
        elif mime is not None and mime.hasImage():
            data = mime.imageData()
            image = data if isinstance(data, QImage) else QImage(data.toImage())
            self.add_image(image)
        else:
            self.statusBar().showMessage("The clipboard holds no image and no file names.", 5000)

    def remove_selected(self) -> None:
        if self._job_running:
            return
        numbers = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        if not numbers and self._current >= 0:
            numbers = [self._current]
        self.queue.remove_rows(numbers)
        self._current = -1
        if self.queue.rowCount():
            self.select_row(min(numbers[0] if numbers else 0, self.queue.rowCount() - 1))
        else:
            self._show_row(-1)
        self._update_actions()

    def clear_queue(self) -> None:
        if self._job_running:
            return
        self.queue.clear()
        self._show_row(-1)
        self._update_actions()

    # ------------------------------------------------------------------ drag & drop on the window

    def dragEnterEvent(self, event) -> None:
        if local_paths(event.mimeData()):
            accept_as_copy(event)
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        paths = local_paths(event.mimeData())
        if paths:
            accept_as_copy(event)
            self.add_paths(paths)

    # ------------------------------------------------------------------ selection & preview

    def select_row(self, number: int) -> None:
        index = self.queue.index(number, COL_PHOTO)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(index)
        if self._current != number:  # setCurrentIndex is a no-op for the current row
            self._show_row(number)

    def _on_current_row_changed(self, current, previous) -> None:
        self._show_row(current.row() if current.isValid() else -1)

    def _show_row(self, number: int) -> None:
        self._current = number
        row = self.current_row()
        if row is None:
            self.preview.clear()
            self._set_field_text("")
            self._show_alternatives(None)
            self.setWindowTitle(APP_TITLE)
            self._update_actions()
            return
        self.setWindowTitle(f"{row.name} — {APP_TITLE}")
        key = str(row.path)
        image = self.image_loader.cached(key, PREVIEW_SIZE)
        if image is not None:
            self.preview.set_image(image)
        elif self.image_loader.has_failed(key, PREVIEW_SIZE):
            self.preview.set_message(row.error or f"Cannot show {row.name}.")
        else:
            self.preview.set_message(f"Loading {row.name}…")
            self.image_loader.request(key, PREVIEW_SIZE)
        self._set_field_text(row.text)
        self._show_alternatives(row)
        self._update_actions()

    def _on_image_loaded(self, path: str, size: int, image: QImage) -> None:
        row = self.current_row()
        if size == PREVIEW_SIZE and row is not None and str(row.path) == path:
            self.preview.set_image(image)

    def _on_image_failed(self, path: str, size: int, message: str) -> None:
        row = self.current_row()
        if size == PREVIEW_SIZE and row is not None and str(row.path) == path:
            self.preview.set_message(message)

    def _set_field_text(self, text: str) -> None:
        self._updating_field = True
        try:
            self.caption_edit.setPlainText(text)
        finally:
            self._updating_field = False

    def _on_caption_edited(self) -> None:
        if self._updating_field or self._current < 0:
            return
        self.queue.set_text(self._current, self.caption_edit.toPlainText())
        self._update_actions()

    def _on_queue_changed(self, top_left, bottom_right, roles=()) -> None:
        if top_left.row() <= self._current <= bottom_right.row() and bottom_right.column() >= COL_CAPTION:
            row = self.current_row()
            if row is not None and row.text != self.caption_edit.toPlainText():
                self._set_field_text(row.text)
                self._show_alternatives(row)
                self._update_actions()

    def _on_queue_size_changed(self, *args) -> None:
        count = self.queue.rowCount()
        done = len(self.queue.numbers_with_status(DONE))
        failed = len(self.queue.numbers_with_status(FAILED))
        if not count:
            self.queue_label.setText("Queue is empty")
        else:
            text = f"{count} photo{'s' if count != 1 else ''}, {done} captioned"
            self.queue_label.setText(text + (f", {failed} failed" if failed else ""))

    def _show_alternatives(self, row: QueueRow | None) -> None:
        self.alternatives.clear()
        caption = row.caption if row is not None else None
        alternatives = tuple(getattr(caption, "alternatives", ()) or ())
        for alternative in alternatives:
            item = QListWidgetItem(f"{alternative.text}    ({alternative.log_prob:.2f})")
            item.setData(Qt.ItemDataRole.UserRole, alternative.text)
            item.setToolTip(f"log-probability {alternative.log_prob:.3f}")
            self.alternatives.addItem(item)
        visible = len(alternatives) > 1
        self.alternatives.setVisible(visible)
        self.alternatives_label.setVisible(visible)

    def _on_alternative_clicked(self, item: QListWidgetItem) -> None:
        text = item.data(Qt.ItemDataRole.UserRole)
        if text and self._current >= 0:
            self.caption_edit.setPlainText(text)  # stored back through textChanged

    # ------------------------------------------------------------------ captioning

    def caption_current(self) -> None:
        if self._current >= 0:
            self.start_job([self._current])

    def caption_all(self) -> None:
        numbers = self.queue.numbers_with_status(WAITING, CANCELLED, FAILED)
        self.start_job(numbers or list(range(self.queue.rowCount())))

    def _maybe_auto_caption(self) -> None:
        if self.auto_caption and self.model_ready and not self._job_running and not self._loading:
            numbers = self.queue.numbers_with_status(WAITING)
            if numbers:
                self.start_job(numbers)

    def start_job(self, numbers: list[int]) -> bool:
        if not numbers or self._job_running or self._loading or not self.model_ready:
            return False
        self._job_paths = [str(self.queue.row(n).path) for n in numbers]
        self._job_done = 0
        self._job_failed = 0
        self._job_error = ""
        for n in numbers:
            self.queue.set_status(n, WAITING)
        self.queue.set_status(numbers[0], CAPTIONING)
        # Disabled here, re-enabled only by the worker's finished signal.
        self._job_running = True
        self._update_actions()
        self.worker.clear_cancel()
        self.request_caption.emit(list(self._job_paths), self.settings.decoding_options())
        return True

    def cancel(self) -> None:
        if self._job_running:
            # Straight to the flag: a queued call would only run after the job.
            self.worker.cancel()
            self.statusBar().showMessage("Cancelling after the current photo…")

    def _on_started(self, total: int) -> None:
        self._job_started_at = time.monotonic()
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(0)
        self.progress_label.setText(f"0 / {total}")
        self.speed_label.setText("")
        for widget in (self.progress_label, self.progress_bar, self.speed_label):
            widget.setVisible(True)
        self.statusBar().showMessage("Captioning…")

    def _on_progress(self, done: int, total: int) -> None:
        self._job_done = done
        self.progress_bar.setValue(done)
        self.progress_label.setText(f"{done} / {total}")
        if done:
            per_photo = (time.monotonic() - self._job_started_at) / done
            self.speed_label.setText(f"{per_photo:.2f} s/photo")
        if done < len(self._job_paths):
            number = self.queue.row_of(self._job_paths[done])
            if number >= 0 and self.queue.row(number).status == WAITING:
                self.queue.set_status(number, CAPTIONING)

    def _on_result(self, path: str, caption) -> None:
        number = self.queue.row_of(path)
        if number < 0:
            return
        self.queue.set_caption(number, caption)
        if number == self._current:
            self._set_field_text(caption.text)
            self._show_alternatives(self.queue.row(number))
        self._on_queue_size_changed()

    def _on_failed(self, path: str, message: str) -> None:
        if not path:
            self._job_error = message
            self.statusBar().showMessage(f"Captioning stopped: {message}")
            dialogs.show_error(self, "Captioning stopped", message)
            return
        self._job_failed += 1
        number = self.queue.row_of(path)
        if number >= 0:
            self.queue.set_status(number, FAILED, message)
            if number == self._current:
                self._update_actions()
        self._on_queue_size_changed()

    def _on_finished(self, cancelled: bool) -> None:
        leftover = 0
        for path in self._job_paths:
            number = self.queue.row_of(path)
            if number >= 0 and self.queue.row(number).status in (WAITING, CAPTIONING):
                leftover += 1
                if cancelled:
                    self.queue.set_status(number, CANCELLED)
                else:
                    # Marked failed (not waiting) so auto-captioning cannot retry forever.
                    self.queue.set_status(number, FAILED, self._job_error or "Not captioned.")
        elapsed = time.monotonic() - self._job_started_at if self._job_started_at else 0.0
        # The worker's progress counts photos tried; the ones that failed are not "captioned".
        failed = self._job_failed
        captioned = max(self._job_done - failed, 0)
        also = f", {failed} failed" if failed else ""
        if cancelled:
            message = f"Cancelled: {captioned} of {len(self._job_paths)} photos captioned{also}"
        elif self._job_error:
            message = f"Captioning stopped: {self._job_error}"
        else:
            message = f"Captioned {captioned} photo{'s' if captioned != 1 else ''}{also} in {elapsed:.1f} s"
        self.statusBar().showMessage(message, 0 if self._job_error else 10000)
        self.progress_bar.setVisible(False)
        self.progress_label.setVisible(False)
        self._job_running = False
        self._job_paths = []
        self._on_queue_size_changed()
        self._update_actions()
        if not cancelled and not self._job_error:
            self._maybe_auto_caption()

    # ------------------------------------------------------------------ saving

    def copy_caption(self) -> None:
        row = self.current_row()
        if row is not None and row.text.strip():
            QApplication.clipboard().setText(" ".join(row.text.split()))
            self.statusBar().showMessage("Caption copied as alt text", 3000)

    def save_sidecar(self) -> None:
        row = self.current_row()
        if row is not None and row.text.strip():
            self._write_sidecars([row], many=False)

    def save_all_sidecars(self) -> None:
        rows = self.queue.captioned()
        if rows:
            self._write_sidecars(rows, many=len(rows) > 1)

    def _write_sidecars(self, rows: list[QueueRow], many: bool) -> tuple[int, int, list[str]]:
        from imgcap_desktop.core.export import sidecar_path, write_sidecar
        from imgcap_desktop.core.errors import SidecarExistsError

        policy = self.settings.get("sidecar_overwrite")
        for_all: str | None = None
        saved, skipped, errors = 0, 0, []
        for row in rows:
            try:
                try:
                    write_sidecar(row.path, row.text)
                    row.saved_text = row.text
                    saved += 1
                    continue
                except SidecarExistsError:
                    pass
                if policy == "skip" or for_all == dialogs.NO_ALL:
                    skipped += 1
                    continue
                overwrite = policy == "overwrite" or for_all == dialogs.YES_ALL
                if not overwrite:
                    answer = dialogs.ask_overwrite(self, sidecar_path(row.path), many=many, photo=row.path)
                    if answer in (dialogs.YES_ALL, dialogs.NO_ALL):
                        for_all = answer
                    overwrite = answer in (dialogs.YES, dialogs.YES_ALL)
                if not overwrite:
                    skipped += 1
                    continue
                write_sidecar(row.path, row.text, overwrite=True)
                row.saved_text = row.text
                saved += 1
            except (ImgcapError, OSError, ValueError) as exc:
                errors.append(str(exc))
        message = f"Saved {saved} caption file{'s' if saved != 1 else ''}"
        if skipped:
            message += f", kept {skipped} existing"
        if errors:
            message += f", {len(errors)} failed"
        self.statusBar().showMessage(message, 8000)
        if errors:
            dialogs.show_errors(self, "Some captions were not saved", errors)
        return saved, skipped, errors

    def write_into_photo(self) -> None:
        row = self.current_row()
        if row is None or not row.text.strip():
            return
        errors, _ = self._write_descriptions([row])
        if errors:
            self.statusBar().showMessage(f"Not written: {errors[0]}", 8000)
            dialogs.show_error(self, "Caption not written into the photo", errors[0])
            return
        self.statusBar().showMessage(f"Caption written into {row.name}", 5000)

    def write_all_into_photos(self) -> None:
        rows = self.queue.captioned()
        if not rows or not dialogs.confirm_write_all(self, len(rows)):
            return
        progress = dialogs.write_progress(self, len(rows))
        try:
            errors, attempted = self._write_descriptions(rows, progress)
        finally:
            progress.close()
        written = attempted - len(errors)
        message = f"Captions written into {written} photo{'s' if written != 1 else ''}"
        if errors:
            message += f", {len(errors)} failed"
        if attempted < len(rows):
            message += f"; cancelled, {len(rows) - attempted} left as they were"
        self.statusBar().showMessage(message, 8000)
        if errors:
            dialogs.show_errors(self, "Some captions were not written into their photos", errors)

    def _write_descriptions(self, rows: list[QueueRow], progress=None) -> tuple[list[str], int]:
        """Write each row's caption into its photo; one sentence per photo that failed, the rest go on.

        Returns the errors and how many photos were attempted (fewer than ``rows`` if cancelled).
        """
        errors = []
        attempted = 0
        for row in rows:
            if progress is not None and progress.wasCanceled():
                break
            try:
                from imgcap_desktop.core.metadata import write_description

                write_description(row.path, " ".join(row.text.split()))
                row.saved_text = row.text
            except (ImgcapError, OSError, ValueError, ImportError) as exc:
                errors.append(str(exc))
            attempted += 1
            if progress is not None:
                progress.setValue(attempted)
        return errors, attempted

    def export(self) -> None:
        rows = [r for r in self.queue.rows if r.text.strip() or r.status == FAILED]
        if not rows:
            return
        target = dialogs.ask_export_path(self, self.settings.get("last_folder"))
        if target is None:
            return
        self.export_to(target)

    def export_to(self, target: Path) -> bool:
        from imgcap_desktop.core.export import export_csv, export_jsonl

        try:
            if target.suffix.lower() == ".jsonl":
                export_jsonl([export_record(r) for r in self.queue.rows if r.text.strip() or r.status == FAILED], target)
            else:
                export_csv([(r.path, " ".join(r.text.split())) for r in self.queue.captioned()], target)
        except (ImgcapError, OSError, ValueError) as exc:
            self.statusBar().showMessage(f"Export failed: {exc}", 8000)
            dialogs.show_error(self, "Export failed", str(exc))
            return False
        for row in self.queue.captioned():
            row.saved_text = row.text
        self.statusBar().showMessage(f"Exported to {target}", 8000)
        return True

    # ------------------------------------------------------------------ window life

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self.shown.emit()

    def closeEvent(self, event) -> None:
        if not self._shut_down and not self._confirm_quit():
            event.ignore()
            return
        self._save_window()
        self.hide()  # look closed at once even if a model load must be waited for
        self.shutdown()
        super().closeEvent(event)

    def _confirm_quit(self) -> bool:
        """Ask about captions not written anywhere; False keeps the window open."""
        unsaved = self.queue.unsaved()
        if not unsaved:
            return True
        answer = dialogs.ask_unsaved(self, len(unsaved))
        if answer == dialogs.DISCARD:
            return True
        if answer == dialogs.SAVE_ALL:
            self._write_sidecars(unsaved, many=len(unsaved) > 1)
            left = len(self.queue.unsaved())
            if not left:
                return True
            self.statusBar().showMessage(f"{left} caption{'s' if left != 1 else ''} still not saved; not quitting")
        return False

    def shutdown(self) -> None:
        """Stop the worker and the image threads; safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        self.worker.cancel()
        self.image_loader.shutdown()
        if self._worker_thread is not None:
            self._worker_thread.stop()

    def _save_window(self) -> None:
        self.settings.set("window_geometry", self.saveGeometry().data())
        self.settings.set("window_state", self.splitter.saveState().data())
        self.settings.sync()

    def _restore_window(self) -> None:
        geometry = self.settings.get("window_geometry")
        if geometry:
            self.restoreGeometry(geometry)
        state = self.settings.get("window_state")
        if state:
            self.splitter.restoreState(state)
        else:
            self.splitter.setSizes([720, 520])


def export_record(row: QueueRow) -> dict:
    record = {"image": str(row.path), "caption": " ".join(row.text.split()), "status": row.status}
    caption = row.caption
    if caption is not None:
        record["score"] = round(float(caption.score), 4)
        record["edited"] = row.edited
        record["alternatives"] = [
            {"text": a.text, "log_prob": round(float(a.log_prob), 4)} for a in getattr(caption, "alternatives", ())
        ]
    if row.error:
        record["error"] = row.error
    return record


__all__ = ["MainWindow", "PLACEHOLDER", "app_icon"]
