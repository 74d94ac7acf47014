"""The main window: a view of the CaptionSession.

It builds the widgets and actions, turns clicks into session calls, and shows what the
session's signals say. Job state, the queue, saving, undo and the file on disk are the
session's (gui/session.py).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QFont, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QStackedWidget,
    QStyle,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import dialogs
from .caption_insight import NO_CALIBRATION, CaptionInsight, StripView
from .image_loader import ImageLoader
from .paths import cache_dir, data_dir, resource_path
from .preview import PreviewWidget, accept_as_copy, local_paths
from .queue_filter import STATUS_FILTERS, QueueFilter
from .queue_model import (CANCELLED, COL_CAPTION, COL_CONFIDENCE, COL_PHOTO, COL_STATUS, DEFAULT_CHECK_BELOW, DONE,
                          FAILED, FOUND, THUMB_SIZE, WAITING, QueueRow)
from .session import CaptionSession
from .settings import Settings
from .worker import Loader, default_loader
from .zoom import ZOOM_SIZE, ZoomDialog

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


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


class _UndoKeys(QObject):
    """Sends Ctrl+Z / Ctrl+Shift+Z in the caption editor to the session's undo stack, so
    that typing, alternatives and re-captions share one history (the editor's own undo is off)."""

    def __init__(self, stack, parent):
        super().__init__(parent)
        self.stack = stack

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            for key, act in ((QKeySequence.StandardKey.Undo, self.stack.undo),
                             (QKeySequence.StandardKey.Redo, self.stack.redo)):
                if event.matches(key):
                    if event.type() == QEvent.Type.KeyPress:
                        act()
                    event.accept()
                    return True
        return False


class MainWindow(QMainWindow):
    shown = Signal()

    def __init__(self, settings: Settings | None = None, loader: Loader = default_loader, *,
                 load_on_start: bool = True, session_folder: Path | None = None):
        super().__init__()
        self.settings = settings if settings is not None else Settings()
        self.session = CaptionSession(loader, store_folder=session_folder or data_dir("session"),
                                      decode_options=self.settings.decoding_options, parent=self)
        self.queue = self.session.queue
        self.image_loader = ImageLoader(self)
        self.queue.set_loader(self.image_loader)
        self.proxy = QueueFilter(self.queue, self)

        self._pending_model: str | None = None   # asked for, saved in the settings once it loads
        self._current = -1
        self._updating_field = False
        self._shut_down = False
        self._shown_once = False
        self._zoom: ZoomDialog | None = None
        self._zoom_path = ""

        self.setWindowTitle(APP_TITLE)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_ui()
        self._build_menus()
        self._connect()
        self._restore_window()
        self._update_actions()
        # After the window is up: restoring may ask a question, and the first load imports TensorFlow.
        QTimer.singleShot(0, self._restore_session)
        if load_on_start:
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
        self.act_export_dataset = self._action("Export &Dataset…", self.export_dataset, "Ctrl+Shift+E", None,
                                               "The captions as a training set: Hugging Face imagefolder "
                                               "(metadata.jsonl) or COCO captions JSON")
        self.act_model = self._action("Open &Model Folder…", self.open_model_folder, "Ctrl+Shift+M", themed_icon("folder", SP.SP_DirIcon), "Load a model bundle or the old image_caption.h5 + tokenizer.pkl")
        self.act_settings = self._action("Se&ttings…", self.open_settings, "Ctrl+,", themed_icon("preferences-system", SP.SP_FileDialogListView), "Beam width, caption length, model")
        self.act_remove = self._action("&Remove from Queue", self.remove_selected, "Del", themed_icon("list-remove", SP.SP_TrashIcon))
        self.act_clear = self._action("C&lear Queue", self.clear_queue, "Ctrl+Shift+Del", themed_icon("edit-clear", SP.SP_DialogResetButton))
        self.act_quit = self._action("&Quit", self.close, "Ctrl+Q", themed_icon("application-exit", SP.SP_DialogCloseButton))
        self.act_find = self._action("&Find in Queue", self.focus_search, "Ctrl+F", themed_icon("edit-find", SP.SP_FileDialogContentsView))
        self.act_rewrite = self._action("Find, Replace, Prefi&x, Suffix…", self.rewrite_captions, "Ctrl+H",
                                        themed_icon("edit-find-replace", SP.SP_FileDialogDetailedView),
                                        "Change many captions at once (trigger words, fixes)")
        self.act_about = self._action("&About Image Caption", self.show_about, None, themed_icon("help-about", SP.SP_MessageBoxInformation))
        self.act_auto = self._action("Caption Photos on &Open", self.set_caption_on_open)
        self.act_auto.setCheckable(True)
        self.act_auto.setChecked(self.settings.get("caption_on_open"))
        self.act_auto.setToolTip("Caption photos as soon as they are added")

        stack = self.session.undo_stack
        self.act_undo = stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts([QKeySequence(QKeySequence.StandardKey.Undo)])
        self.act_undo.setIcon(themed_icon("edit-undo", SP.SP_ArrowBack))
        self.act_redo = stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence(QKeySequence.StandardKey.Redo)])
        self.act_redo.setIcon(themed_icon("edit-redo", SP.SP_ArrowForward))
        self.addActions([self.act_undo, self.act_redo])

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
        self.preview.setToolTip("Drop photos or folders here; click the photo to see it at full size")
        self.caption_edit = QPlainTextEdit()
        self.caption_edit.setObjectName("caption")
        self.caption_edit.setPlaceholderText("The caption appears here. Edit it before copying or saving.")
        self.caption_edit.setUndoRedoEnabled(False)  # the session's undo stack has the history
        self.caption_edit.installEventFilter(_UndoKeys(self.session.undo_stack, self))
        font = QFont(self.caption_edit.font())
        font.setPointSizeF(font.pointSizeF() * 1.45)
        self.caption_edit.setFont(font)
        line = self.caption_edit.fontMetrics().lineSpacing()
        self.caption_edit.setFixedHeight(int(line * 3.2 + 16))
        self.caption_edit.setTabChangesFocus(True)
        self.caption_edit.setEnabled(False)
        self.insight = CaptionInsight()
        # The preview, or (the "Every word" toggle) every word's attention map as a strip.
        self.strip_view = StripView()
        self.preview_stack = QStackedWidget()
        self.preview_stack.addWidget(self.preview)
        self.preview_stack.addWidget(self.strip_view)

        self.alternatives_label = QLabel("Alternatives (click one to use it):")
        self.alternatives = QListWidget()
        self.alternatives.setObjectName("alternatives")
        self.alternatives.setMaximumHeight(int(self.alternatives.fontMetrics().lineSpacing() * 4.6))
        self.alternatives.setToolTip("Beam search's candidates, best first, with the score they were ranked by "
                                     "(the caption's score; closer to 0 is more certain)")
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
        left_layout.addWidget(self.preview_stack, 1)
        left_layout.addWidget(self.caption_edit)
        left_layout.addWidget(self.insight)
        left_layout.addWidget(self.alternatives_label)
        left_layout.addWidget(self.alternatives)
        left_layout.addLayout(buttons)

        # Right: the queue, searchable, filterable and sortable (by clicking a column header).
        self.search = QLineEdit()
        self.search.setObjectName("search")
        self.search.setPlaceholderText("Search names and captions")
        self.search.setClearButtonEnabled(True)
        self.status_filter = QComboBox()
        self.status_filter.setObjectName("status-filter")
        self.status_filter.addItems([label for label, _ in STATUS_FILTERS])
        self.status_filter.setToolTip("Show only some of the photos")
        filters = QHBoxLayout()
        filters.addWidget(self.search, 1)
        filters.addWidget(self.status_filter)

        self.table = QTableView()
        self.table.setObjectName("queue")
        self.table.setModel(self.proxy)
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
        # No sort column at first: the queue shows in the order photos were added.
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        header.setToolTip("Click a column to sort by it")
        self.table.setColumnWidth(COL_PHOTO, 190)
        self.table.setColumnWidth(COL_STATUS, 96)
        header.setSectionResizeMode(COL_CONFIDENCE, QHeaderView.ResizeMode.Interactive)
        self.table.setColumnWidth(COL_CONFIDENCE, 104)
        self.queue_label = QLabel("Queue is empty")

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 8, 8, 8)
        right_layout.addWidget(self.queue_label)
        right_layout.addLayout(filters)
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
        file_menu.addActions([self.act_save, self.act_save_all, self.act_write, self.act_write_all, self.act_export,
                              self.act_export_dataset])
        file_menu.addSeparator()
        file_menu.addAction(self.act_model)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        edit_menu = menu.addMenu("&Edit")
        edit_menu.addActions([self.act_undo, self.act_redo])
        edit_menu.addSeparator()
        edit_menu.addActions([self.act_copy, self.act_find, self.act_rewrite])
        edit_menu.addSeparator()
        edit_menu.addActions([self.act_remove, self.act_clear])
        caption_menu = menu.addMenu("&Caption")
        caption_menu.addActions([self.act_caption, self.act_caption_all, self.act_cancel])
        caption_menu.addSeparator()
        caption_menu.addAction(self.act_auto)
        caption_menu.addSeparator()
        caption_menu.addAction(self.act_settings)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.act_about)

    def _connect(self) -> None:
        session = self.session
        session.model_loading.connect(self._on_model_loading)
        session.model_ready.connect(self._on_model_ready)
        session.model_failed.connect(self._on_model_failed)
        session.job_started.connect(self._on_started)
        session.job_progress.connect(self._on_progress)
        session.job_stopped.connect(self._on_job_stopped)
        session.job_finished.connect(self._on_finished)
        session.state_changed.connect(self._on_state_changed)
        session.store_failed.connect(self._on_store_failed)
        session.checked.connect(self._maybe_auto_caption)

        self.preview.paths_dropped.connect(self.add_paths)
        self.preview.image_dropped.connect(self.add_image)
        self.preview.clicked.connect(self._on_preview_clicked)
        self.caption_edit.textChanged.connect(self._on_caption_edited)
        self.insight.word_shown.connect(self._on_word_shown)
        self.insight.keywords_edited.connect(self._on_keywords_edited)
        self.insight.strip_toggled.connect(self._on_strip_toggled)
        self.alternatives.itemClicked.connect(self._on_alternative_clicked)
        self.alternatives.itemActivated.connect(self._on_alternative_clicked)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row_changed)
        self.search.textChanged.connect(self._on_filter_changed)
        self.status_filter.currentIndexChanged.connect(self._on_filter_changed)
        self.queue.dataChanged.connect(self._on_queue_changed)
        self.queue.rowsInserted.connect(self._on_rows_moved)
        self.queue.rowsRemoved.connect(self._on_rows_moved)
        self.queue.modelReset.connect(self._on_rows_moved)
        self.image_loader.loaded.connect(self._on_image_loaded)
        self.image_loader.load_failed.connect(self._on_image_failed)

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        return self.session.job_running

    @property
    def loading(self) -> bool:
        return self.session.loading

    @property
    def model_ready(self) -> bool:
        return self.session.model_is_ready

    def current_row(self) -> QueueRow | None:
        if 0 <= self._current < self.queue.rowCount():
            return self.queue.row(self._current)
        return None

    def _update_actions(self) -> None:
        session = self.session
        idle = session.idle
        ready = session.model_is_ready
        row = self.current_row()
        has_rows = self.queue.rowCount() > 0
        has_text = row is not None and bool(row.text.strip())
        any_text = any(r.text.strip() for r in self.queue.rows)
        self.act_caption.setEnabled(idle and ready and row is not None)
        self.act_caption_all.setEnabled(idle and ready and has_rows)
        self.act_cancel.setEnabled(session.job_running)
        self.act_model.setEnabled(idle)
        self.act_settings.setEnabled(idle)
        self.act_copy.setEnabled(has_text)
        self.act_save.setEnabled(has_text)
        self.act_save_all.setEnabled(idle and any_text)
        self.act_write.setEnabled(idle and has_text)
        self.act_write_all.setEnabled(idle and any_text)
        self.act_export.setEnabled(idle and bool(session.exportable()))
        self.act_export_dataset.setEnabled(idle and any_text)
        self.act_rewrite.setEnabled(not session.job_running and any_text)
        self.act_remove.setEnabled(not session.job_running and has_rows)
        self.act_clear.setEnabled(not session.job_running and has_rows)
        self.caption_edit.setEnabled(row is not None)

    def _on_state_changed(self) -> None:
        self._update_queue_label()
        self._update_actions()

    def _update_queue_label(self) -> None:
        count = self.queue.rowCount()
        if not count:
            self.queue_label.setText("Queue is empty")
            return
        done = len(self.queue.numbers_with_status(DONE))
        failed = len(self.queue.numbers_with_status(FAILED))
        found = len(self.queue.numbers_with_status(FOUND))
        unsaved = len(self.queue.unsaved())
        parts = [plural(count, "photo"), f"{done} captioned"]
        if found:
            parts.append(f"{found} with a caption already written")
        if failed:
            parts.append(f"{failed} failed")
        if unsaved:
            parts.append(f"{unsaved} unsaved")
        if self.proxy.active:
            parts.append(f"{self.proxy.rowCount()} shown")
        self.queue_label.setText(", ".join(parts))

    # ------------------------------------------------------------------ the saved session

    def _restore_session(self) -> None:
        session = self.session
        photos = session.restorable
        if not photos:
            return
        policy = self.settings.get("restore_session")
        unsaved = sum(p.unsaved for p in photos)
        if policy == "never":
            restore = False
        elif policy == "always":
            restore = True
        else:
            restore = dialogs.ask_restore(self, len(photos), unsaved)
        if not restore:
            session.discard_restorable()
            return
        count = session.restore()
        self.statusBar().showMessage(f"Reopened the last queue: {plural(count, 'photo')}"
                                     + (f", {unsaved} with unsaved captions" if unsaved else ""), 8000)
        if self._current < 0 and count:
            self.select_row(0)
        self._maybe_auto_caption()

    def _on_store_failed(self, message: str) -> None:
        self.statusBar().showMessage("The queue is not being saved to disk; save your captions before quitting.")
        dialogs.show_error(self, "The queue is not being saved", message)

    # ------------------------------------------------------------------ model

    def load_model(self, source: str | None = None) -> None:
        """Ask the worker to load `source` (or the configured model)."""
        if source is None:
            source = self.settings.get("model_path") or ""
        if self.session.load_model(source):
            self.model_label.setText("Loading model…")
            self.statusBar().showMessage("Loading model…")

    def _on_model_loading(self) -> None:
        self.model_label.setText("Loading model…")

    def _on_model_ready(self, name: str) -> None:
        if self._pending_model is not None:
            # Only a folder that loaded becomes the saved model and a recent entry.
            self.settings.set("model_path", self._pending_model)
            if self._pending_model:
                self.settings.add_recent("recent_models", self._pending_model)
            self._pending_model = None
        self.model_label.setText(f"Model: {name}")
        self.model_label.setToolTip(name if self.session.model_info.get("calibrated", True)
                                    else f"{name}\n{NO_CALIBRATION}")
        self._apply_check_below()
        self.statusBar().showMessage("Model ready", 4000)
        self._maybe_auto_caption()

    def _on_model_failed(self, message: str) -> None:
        if self._pending_model:
            self.settings.remove_recent("recent_models", self._pending_model)
        self._pending_model = None
        # The model that was loaded before (if any) is still the one captioning: say so.
        name = self.session.model_name
        self.model_label.setText(f"Model: {name}" if name else "No model")
        self.model_label.setToolTip(message)
        self.statusBar().showMessage(f"Model not loaded: {message}")
        dialogs.show_error(self, "Model not loaded", message)

    def open_model_folder(self) -> None:
        folder = dialogs.choose_model_folder(self, self.settings.get("model_path") or self.settings.get("last_folder"))
        if folder:
            self.change_model(folder)

    def change_model(self, source: str) -> None:
        if not self.session.idle:
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
        for name, value in values.items():
            if name != "model_path":
                self.settings.set(name, value)
        self.act_auto.setChecked(self.settings.get("caption_on_open"))
        self._apply_check_below()
        new_model = values.get("model_path", old_model) or ""
        if new_model != old_model or not self.model_ready:
            self.change_model(new_model)

    def check_below(self) -> float:
        """The confidence under which a caption is to be checked: the user's, else the model's suggestion."""
        chosen = self.settings.get("check_below")
        if chosen is None:
            chosen = self.session.model_info.get("check_below")
        return float(chosen if chosen is not None else DEFAULT_CHECK_BELOW)

    def _apply_check_below(self) -> None:
        self.queue.set_check_below(self.check_below(), bool(self.session.model_info.get("calibrated", True)))
        self.proxy.set_status_filter(self.status_filter.currentIndex())  # "To check" re-tests every row
        self._refresh_insight()

    def set_caption_on_open(self, on: bool) -> None:
        self.settings.set("caption_on_open", bool(on))
        self.act_auto.setChecked(bool(on))
        if on:
            self._maybe_auto_caption()

    def show_about(self) -> None:
        from .about import AboutDialog

        AboutDialog(self.session.model_name, self.settings.get("model_path"), self).exec()

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
        new_rows = self.session.add_paths(collected.images)
        parts = [f"Added {plural(len(new_rows), 'photo')}"]
        already = len(collected.images) - len(new_rows)
        if already:
            parts.append(f"{already} already in the queue")
        if collected.skipped:
            parts.append(f"skipped {plural(len(collected.skipped), 'non-image file')}")
        unreadable = getattr(collected, "unreadable_folders", [])
        if unreadable:
            parts.append(f"{plural(len(unreadable), 'folder')} could not be read")
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

    def selected_numbers(self) -> list[int]:
        """Queue row numbers of the selected table rows (the table may be sorted or filtered)."""
        return sorted({self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()})

    def remove_selected(self) -> None:
        if self.busy:
            return
        numbers = self.selected_numbers() or ([self._current] if self._current >= 0 else [])
        if not numbers:
            return
        for number in numbers:
            self.image_loader.forget(str(self.queue.row(number).path))
        self.session.remove(numbers)
        self.statusBar().showMessage(f"Removed {plural(len(numbers), 'photo')} (Undo puts them back)", 8000)
        self._after_rows_removed(numbers[0])

    def clear_queue(self) -> None:
        if self.busy or not self.queue.rowCount():
            return
        count = self.queue.rowCount()
        self.session.clear()
        self.statusBar().showMessage(f"Cleared {plural(count, 'photo')} from the queue (Undo puts them back)", 8000)
        self._after_rows_removed(0)

    def _after_rows_removed(self, first: int) -> None:
        self._current = -1
        if self.queue.rowCount():
            self.select_row(min(first, self.queue.rowCount() - 1))
        else:
            self._show_row(-1)
        self._update_actions()

    def rewrite_captions(self) -> None:
        selected = self.selected_numbers()
        values = dialogs.ask_rewrite(self, len(selected), self.queue.rowCount())
        if values is None:
            return
        numbers = selected if values.pop("scope") == "selected" else list(range(self.queue.rowCount()))
        changed = self.session.rewrite(numbers, **values)
        self.statusBar().showMessage(f"Changed {plural(changed, 'caption')} (Undo takes it back)", 8000)

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _on_filter_changed(self, *args) -> None:
        self.proxy.set_search(self.search.text())
        self.proxy.set_status_filter(self.status_filter.currentIndex())
        self._update_queue_label()

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

    # ------------------------------------------------------------------ captioning

    def caption_current(self) -> None:
        if self._current >= 0:
            self.start_job([self._current])

    def caption_all(self) -> None:
        numbers = self.queue.numbers_with_status(WAITING, CANCELLED, FAILED)
        # When all are captioned, again; captions found with the photos are left to the Caption button.
        self.start_job(numbers or self.queue.numbers_with_status(DONE))

    def _maybe_auto_caption(self) -> None:
        if self.settings.get("caption_on_open") and self.model_ready and self.session.idle:
            numbers = self.queue.numbers_with_status(WAITING)
            if numbers:
                self.start_job(numbers)

    def start_job(self, numbers: list[int]) -> bool:
        return self.session.start_job(numbers)

    def cancel(self) -> None:
        if self.session.cancel():
            self.statusBar().showMessage("Cancelling after the current photo…")

    def _on_started(self, total: int) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(0)
        self.progress_label.setText(f"0 / {total}")
        self.speed_label.setText("")
        for widget in (self.progress_label, self.progress_bar, self.speed_label):
            widget.setVisible(True)
        self.statusBar().showMessage("Captioning…")

    def _on_progress(self, done: int, total: int, per_photo: float) -> None:
        self.progress_bar.setValue(done)
        self.progress_label.setText(f"{done} / {total}")
        if done:
            self.speed_label.setText(f"{per_photo:.2f} s/photo")

    def _on_job_stopped(self, message: str) -> None:
        self.statusBar().showMessage(f"Captioning stopped: {message}")
        dialogs.show_error(self, "Captioning stopped", message)

    def _on_finished(self, message: str, ok: bool) -> None:
        self.statusBar().showMessage(message, 10000 if ok or "Cancelled" in message else 0)
        self.progress_bar.setVisible(False)
        self.progress_label.setVisible(False)
        if ok:
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
            self._write_sidecars([row])

    def save_all_sidecars(self) -> None:
        rows = self.queue.captioned()
        if rows:
            self._write_sidecars(rows)

    def _ask_overwrite(self, sidecar: Path, photo: Path, many: bool) -> str:
        return dialogs.ask_overwrite(self, sidecar, many=many, photo=photo)

    def _write_sidecars(self, rows: list[QueueRow]):
        report = self.session.save_sidecars(rows, policy=self.settings.get("sidecar_overwrite"),
                                            ask=self._ask_overwrite, kind=self.settings.get("sidecar_kind"),
                                            suffix=self.settings.get("caption_extension"),
                                            xmp_naming=self.settings.get("xmp_naming"))
        message = f"Saved {plural(report.saved, 'caption file')}"
        if report.skipped:
            message += f", kept {report.skipped} existing"
        if report.errors:
            message += f", {len(report.errors)} failed"
        self.statusBar().showMessage(message, 8000)
        if report.errors:
            dialogs.show_errors(self, "Some captions were not saved", report.errors)
        return report

    def write_into_photo(self) -> None:
        row = self.current_row()
        if row is None or not row.text.strip():
            return
        report = self.session.write_descriptions([row])
        if report.errors:
            self.statusBar().showMessage(f"Not written: {report.errors[0]}", 8000)
            dialogs.show_error(self, "Caption not written into the photo", report.errors[0])
            return
        self.statusBar().showMessage(f"Caption written into {row.name}", 5000)

    def write_all_into_photos(self) -> None:
        rows = self.queue.captioned()
        if not rows or not dialogs.confirm_write_all(self, len(rows)):
            return
        progress = dialogs.write_progress(self, len(rows))

        def step(done: int) -> bool:
            progress.setValue(done)
            return not progress.wasCanceled()

        try:
            report = self.session.write_descriptions(rows, step)
        finally:
            progress.close()
        message = f"Captions written into {plural(report.saved, 'photo')}"
        if report.errors:
            message += f", {len(report.errors)} failed"
        if report.attempted < len(rows):
            message += f"; cancelled, {len(rows) - report.attempted} left as they were"
        self.statusBar().showMessage(message, 8000)
        if report.errors:
            dialogs.show_errors(self, "Some captions were not written into their photos", report.errors)

    def export(self) -> None:
        if not self.session.exportable():
            return
        target = dialogs.ask_export_path(self, self.settings.get("last_folder"))
        if target is not None:
            self.export_to(target)

    def export_to(self, target: Path) -> bool:
        from imgcap_desktop.core.errors import ImgcapError

        try:
            self.session.export(target)
        except (ImgcapError, OSError, ValueError) as exc:
            self.statusBar().showMessage(f"Export failed: {exc}", 8000)
            dialogs.show_error(self, "Export failed", str(exc))
            return False
        self.statusBar().showMessage(f"Exported to {target}", 8000)
        return True

    def export_dataset(self) -> None:
        from imgcap_desktop.core.dataset_layouts import common_folder

        rows = self.queue.captioned()
        if not rows:
            return
        chosen = dialogs.ask_dataset_path(self, common_folder([r.path for r in rows]))
        if chosen is not None:
            self.export_dataset_to(*chosen)

    def export_dataset_to(self, layout: str, target: Path):
        from imgcap_desktop.core.errors import ImgcapError

        try:
            report = self.session.export_dataset(layout, target)
        except (ImgcapError, OSError, ValueError) as exc:
            self.statusBar().showMessage(f"Export failed: {exc}", 8000)
            dialogs.show_error(self, "Export failed", str(exc))
            return None
        self.statusBar().showMessage(f"{plural(report.written, 'caption')} written to {target}"
                                     + (f"; {len(report.left_out)} left out" if report.left_out else ""), 8000)
        if report.left_out:
            dialogs.show_errors(self, "Some photos are not in the training set", report.left_out)
        return report

    # ------------------------------------------------------------------ selection & preview

    def select_row(self, number: int) -> None:
        proxy_row = self.proxy.proxy_row(number)
        if proxy_row >= 0:
            index = self.proxy.index(proxy_row, COL_PHOTO)
            self.table.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
            )
            self.table.scrollTo(index)
        if self._current != number:  # setCurrentIndex is a no-op for the current row
            self._show_row(number)

    def _on_current_row_changed(self, current, previous) -> None:
        if current.isValid():
            self._show_row(self.proxy.mapToSource(current).row())

    def _on_rows_moved(self, *args) -> None:
        self._update_queue_label()

    def _show_row(self, number: int) -> None:
        self._current = number
        row = self.current_row()
        if row is None:
            self.preview.clear()
            self._set_field_text("")
            self._show_alternatives(None)
            self._refresh_insight()
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
        self._refresh_insight()
        self._update_actions()

    # ------------------------------------------------------------------ confidence, keywords, attention

    def _refresh_insight(self) -> None:
        self.insight.show_row(self.current_row(), self.session.model_info, self.check_below())
        if self.preview_stack.currentWidget() is self.strip_view:
            self._fill_strip()

    def _on_word_shown(self, index: int) -> None:
        maps = self.insight.maps
        if 0 <= index < len(maps) and self.preview.has_image():
            m = maps[index]
            detail = (f"{100 * m.grid_share:.0f}% on the photo, {100 * m.semantic:.0f}% on its ImageNet classes"
                      if m.semantic > 0 else "")
            self.preview.set_overlay(m.grid, m.word, detail)
        else:
            self.preview.set_overlay(None)

    def _on_keywords_edited(self, words: tuple) -> None:
        if self._current >= 0:
            self.session.set_keywords(self._current, tuple(words))

    def _on_strip_toggled(self, on: bool) -> None:
        self.preview_stack.setCurrentWidget(self.strip_view if on else self.preview)
        if on:
            self._fill_strip()

    def _fill_strip(self) -> None:
        row = self.current_row()
        image = self.image_loader.cached(str(row.path), PREVIEW_SIZE) if row is not None else None
        self.strip_view.show_maps(image, self.insight.maps)

    def _on_preview_clicked(self) -> None:
        row = self.current_row()
        if row is None or not self.preview.has_image():
            self.open_files()
            return
        self.show_zoom(row)

    def show_zoom(self, row: QueueRow) -> ZoomDialog:
        """The shown photo at full size; a sharper decode replaces the preview's when it arrives."""
        image = self.image_loader.cached(str(row.path), ZOOM_SIZE) or self.image_loader.cached(str(row.path), PREVIEW_SIZE)
        self._zoom = ZoomDialog(row.name, image or QImage(), self)
        self._zoom.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._zoom.destroyed.connect(lambda *_: setattr(self, "_zoom", None))
        self._zoom_path = str(row.path)
        self.image_loader.request(self._zoom_path, ZOOM_SIZE)
        self._zoom.open()
        return self._zoom

    def _on_image_loaded(self, path: str, size: int, image: QImage) -> None:
        row = self.current_row()
        if size == PREVIEW_SIZE and row is not None and str(row.path) == path:
            self.preview.set_image(image)
            self._on_word_shown(self.insight.current_word())
            if self.preview_stack.currentWidget() is self.strip_view:
                self._fill_strip()
        elif size == ZOOM_SIZE and self._zoom is not None and path == self._zoom_path:
            self._zoom.set_image(image)

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
        self.session.edit(self._current, self.caption_edit.toPlainText(), typing=True)

    def _on_queue_changed(self, top_left, bottom_right, roles=()) -> None:
        if top_left.row() <= self._current <= bottom_right.row() and bottom_right.column() >= COL_CAPTION:
            row = self.current_row()
            if row is not None and row.text != self.caption_edit.toPlainText():
                cursor = self.caption_edit.textCursor().position()
                self._set_field_text(row.text)
                # An undo of typing puts the cursor back where the typing was, not at the start.
                moved = self.caption_edit.textCursor()
                moved.setPosition(min(cursor, len(row.text)))
                self.caption_edit.setTextCursor(moved)
            self._show_alternatives(row)
            self._refresh_insight()
        self._update_queue_label()

    def _show_alternatives(self, row: QueueRow | None) -> None:
        self.alternatives.clear()
        caption = row.caption if row is not None else None
        alternatives = tuple(getattr(caption, "alternatives", ()) or ())
        for alternative in alternatives:
            item = QListWidgetItem(f"{alternative.text}    ({alternative.score:.2f})")
            item.setData(Qt.ItemDataRole.UserRole, alternative.text)
            item.setToolTip(f"score {alternative.score:.3f}, summed log-probability {alternative.log_prob:.2f}")
            self.alternatives.addItem(item)
        visible = len(alternatives) > 1
        self.alternatives.setVisible(visible)
        self.alternatives_label.setVisible(visible)

    def _on_alternative_clicked(self, item: QListWidgetItem) -> None:
        text = item.data(Qt.ItemDataRole.UserRole)
        if text and self._current >= 0:
            self.session.edit(self._current, text)

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
            self.session.forget()  # the next launch does not bring back what was discarded
            return True
        if answer == dialogs.SAVE_ALL:
            self._write_sidecars(unsaved)
            left = len(self.queue.unsaved())
            if not left:
                return True
            self.statusBar().showMessage(f"{plural(left, 'caption')} still not saved; not quitting")
        return False

    def shutdown(self) -> None:
        """Stop the worker and the image threads and close the session file; safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        self.image_loader.shutdown()
        self.session.shutdown()

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


__all__ = ["MainWindow", "app_icon"]
