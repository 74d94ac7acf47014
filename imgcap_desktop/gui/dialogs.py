"""Message boxes and the settings dialog.

The questions are plain functions so tests can replace them with monkeypatch instead
of driving modal Qt dialogs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QDoubleSpinBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from imgcap_desktop.core.options import BY_NAME, DECODING_OPTIONS

from .settings import RESTORE_POLICIES, SIDECAR_POLICIES

from .session import NO, NO_ALL, YES, YES_ALL  # noqa: F401 - the answers ask_overwrite gives


def ask_overwrite(parent: QWidget | None, path: Path, many: bool = False, photo: Path | None = None) -> str:
    """Whether to replace an existing caption file: yes / no / yes_all / no_all."""
    whose = f" (the caption file of {photo.name})" if photo is not None else ""
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    if many:
        buttons |= QMessageBox.StandardButton.YesToAll | QMessageBox.StandardButton.NoToAll
    answer = QMessageBox.question(
        parent,
        "Replace caption file?",
        f"{path.name}{whose} already exists.\nReplace it with the new caption?",
        buttons,
        QMessageBox.StandardButton.No,
    )
    return {
        QMessageBox.StandardButton.Yes: YES,
        QMessageBox.StandardButton.YesToAll: YES_ALL,
        QMessageBox.StandardButton.NoToAll: NO_ALL,
    }.get(answer, NO)


SAVE_ALL, DISCARD, CANCEL = "save_all", "discard", "cancel"


def ask_unsaved(parent: QWidget | None, count: int) -> str:
    """Before quitting with captions not written anywhere: save_all / discard / cancel."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved captions",
                      f"{count} caption{'s are' if count != 1 else ' is'} not saved anywhere yet.",
                      QMessageBox.StandardButton.SaveAll | QMessageBox.StandardButton.Discard
                      | QMessageBox.StandardButton.Cancel, parent)
    box.setInformativeText("Save All writes a NAME.txt caption file beside each photo. "
                           "Discard quits and forgets this queue and its captions.")
    box.setDefaultButton(QMessageBox.StandardButton.SaveAll)
    answer = box.exec()
    return {QMessageBox.StandardButton.SaveAll: SAVE_ALL,
            QMessageBox.StandardButton.Discard: DISCARD}.get(QMessageBox.StandardButton(answer), CANCEL)


def ask_restore(parent: QWidget | None, count: int, unsaved: int) -> bool:
    """At launch, with a queue left by the last run: True reopens it."""
    box = QMessageBox(QMessageBox.Icon.Question, "Reopen the last queue?",
                      f"The last session left {count} photo{'s' if count != 1 else ''} in the queue"
                      + (f", {unsaved} of them with captions not saved anywhere." if unsaved else "."),
                      QMessageBox.StandardButton.NoButton, parent)
    reopen = box.addButton("Reopen", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Start Empty", QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(reopen)
    box.setInformativeText("Settings › When the app starts chooses whether to ask.")
    box.exec()
    return box.clickedButton() is reopen


def confirm_write_all(parent: QWidget | None, count: int) -> bool:
    """Whether to write captions into ``count`` photos: it changes the user's own files."""
    answer = QMessageBox.question(
        parent,
        "Write captions into the photos?",
        f"Write the caption of each of {count} photos into its description (EXIF, XMP and IPTC)?\n"
        "Descriptions already in the photos are replaced; the pixels are not touched.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def write_progress(parent: QWidget | None, total: int) -> QProgressDialog:
    """Progress with a Cancel button for writing into many photos; it only appears if the work
    takes more than a moment, and each step lets the window repaint."""
    dialog = QProgressDialog("Writing captions into the photos…", "Cancel", 0, total, parent)
    dialog.setWindowTitle("Write All into Photos")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(400)
    dialog.setValue(0)
    return dialog


def show_error(parent: QWidget | None, title: str, message: str) -> QMessageBox:
    """A window-modal warning that does not block the caller (open(), not exec()):
    it is often raised from a worker signal, where a nested event loop would let
    further signals re-enter the handler."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("error-box")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def show_errors(parent: QWidget | None, title: str, errors: list[str], limit: int = 8) -> None:
    """One warning listing the first ``limit`` failures of a batch, and how many more there were."""
    more = f"\n… and {len(errors) - limit} more." if len(errors) > limit else ""
    show_error(parent, title, "\n".join(errors[:limit]) + more)


def ask_export_path(parent: QWidget | None, start: str = "") -> Path | None:
    csv_filter, jsonl_filter = "CSV (*.csv)", "JSON lines (*.jsonl)"
    folder = Path(start) if start else Path.home()
    name, chosen = QFileDialog.getSaveFileName(
        parent, "Export captions", str(folder / "captions.csv"), f"{csv_filter};;{jsonl_filter}"
    )
    if not name:
        return None
    path = Path(name)
    if path.suffix.lower() not in (".csv", ".jsonl"):
        path = path.with_suffix(".jsonl" if chosen == jsonl_filter else ".csv")
    return path


DATASET_FILTERS = {"hf": "Hugging Face imagefolder (metadata.jsonl)", "coco": "COCO captions (*.json)"}


def ask_dataset_path(parent: QWidget | None, start: Path | None) -> tuple[str, Path] | None:
    """(layout, file) for File > Export Dataset; starts in the photos' common folder, where an
    imagefolder's metadata.jsonl has to be."""
    folder = start or Path.home()
    name, chosen = QFileDialog.getSaveFileName(
        parent, "Export captions as a training set", str(folder / "metadata.jsonl"),
        ";;".join(DATASET_FILTERS.values()))
    if not name:
        return None
    path = Path(name)
    layout = "coco" if chosen == DATASET_FILTERS["coco"] or path.suffix.lower() == ".json" else "hf"
    if layout == "coco" and path.suffix.lower() != ".json":
        path = path.with_name("captions.json") if path.name == "metadata.jsonl" else path.with_suffix(".json")
    return layout, path


def choose_model_folder(parent: QWidget | None, start: str = "") -> str | None:
    folder = QFileDialog.getExistingDirectory(
        parent, "Open model folder (a bundle, or image_caption.h5 + tokenizer.pkl)", start
    )
    return folder or None


def model_label(path: str) -> str:
    return "Default model" if not path else f"{Path(path).name}  —  {path}"


class SettingsDialog(QDialog):
    """Decoding options, the sidecar policy and the model, from core.options' limits."""

    def __init__(self, values: dict, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(460)
        form = QFormLayout()

        # The decoding rows come from the options table: one place says what they are.
        self.decoding: dict[str, QSpinBox | QDoubleSpinBox] = {}
        for option in DECODING_OPTIONS:
            widget = self._spin(option, values)
            self.decoding[option.name] = widget
            form.addRow(option.label, widget)

        option = BY_NAME["check_below"]
        self.check_below = self._spin(option, values)
        self.check_below.setToolTip("A caption whose confidence is below this gets a 'check' badge in the queue, "
                                    "and the To check filter lists it. The model suggests a value.")
        form.addRow(option.label, self.check_below)

        self.caption_on_open = QCheckBox("Caption photos as soon as they are added")
        self.caption_on_open.setChecked(bool(values.get("caption_on_open", True)))
        form.addRow("", self.caption_on_open)

        self.restore = QComboBox()
        labels = {"always": "Reopen the last queue", "ask": "Ask whether to reopen the last queue",
                  "never": "Start with an empty queue"}
        for policy in RESTORE_POLICIES:
            self.restore.addItem(labels[policy], policy)
        self.restore.setCurrentIndex(max(0, self.restore.findData(values.get("restore_session", "ask"))))
        form.addRow("When the app &starts:", self.restore)

        self.sidecar = QComboBox()
        labels = {"ask": "Ask before replacing", "overwrite": "Replace", "skip": "Keep the existing file"}
        for policy in SIDECAR_POLICIES:
            self.sidecar.addItem(labels[policy], policy)
        self.sidecar.setCurrentIndex(max(0, self.sidecar.findData(values.get("sidecar_overwrite", "ask"))))
        form.addRow("Existing &NAME.txt:", self.sidecar)

        self.sidecar_kind = self._choices(values, "sidecar_kind", {
            "txt": "A caption file (NAME.txt)", "xmp": "An XMP sidecar (with the keywords)",
            "txt+xmp": "Both"})
        form.addRow("Save Sidecar &writes:", self.sidecar_kind)
        self.caption_extension = self._choices(values, "caption_extension", {
            ".txt": "NAME.txt", ".caption": "NAME.caption (kohya, OneTrainer)"})
        form.addRow("Caption &file:", self.caption_extension)
        self.xmp_naming = self._choices(values, "xmp_naming", {
            "full": "NAME.jpg.xmp (darktable, digiKam)", "base": "NAME.xmp (Lightroom, Capture One)"})
        form.addRow("&XMP sidecar name:", self.xmp_naming)

        self.model = QComboBox()
        self.model.addItem("Default model", "")
        for path in values.get("recent_models", []):
            if path:
                self.model.addItem(model_label(path), path)
        current = values.get("model_path", "")
        if current and self.model.findData(current) < 0:
            self.model.addItem(model_label(current), current)
        self.model.setCurrentIndex(max(0, self.model.findData(current)))
        browse = QPushButton("Open model folder…")
        browse.clicked.connect(self._browse)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        # A row that is a layout gets no buddy from QFormLayout, and its "&" would show literally.
        model_caption = QLabel("&Model:")
        model_caption.setBuddy(self.model)
        form.addRow(model_caption, model_row)
        self._last_folder = values.get("last_folder", "")

        hint = QLabel("Beam width 1 is fastest; wider beams are slower, often better, and offer alternatives.")
        hint.setWordWrap(True)
        hint.setEnabled(False)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(buttons)

    @staticmethod
    def _choices(values: dict, name: str, labels: dict[str, str]) -> QComboBox:
        option = BY_NAME[name]
        combo = QComboBox()
        for choice in option.choices:
            combo.addItem(labels[choice], choice)
        combo.setCurrentIndex(max(0, combo.findData(values.get(name, option.default))))
        combo.setToolTip(option.help)
        return combo

    def _spin(self, option, values: dict):
        value = values.get(option.name, option.default)
        if option.type is float:
            # One step below the minimum stands for "not set" (None): the model's own value.
            spin = QDoubleSpinBox()
            spin.setDecimals(2)
            spin.setSingleStep(0.1)
            spin.setRange(option.minimum - 0.1, option.maximum)
            spin.setValue(option.minimum - 0.1 if value is None else float(value))
        else:
            spin = QSpinBox()
            spin.setRange(int(option.minimum or 0), int(option.maximum or 10_000))
            spin.setValue(int(value))
        if option.special:
            spin.setSpecialValueText(option.special)
        spin.setToolTip(option.help)
        return spin

    def _decoding_value(self, name: str):
        return self._value(self.decoding[name])

    @staticmethod
    def _value(widget):
        if isinstance(widget, QDoubleSpinBox):
            return None if widget.value() < widget.minimum() + 0.05 else round(widget.value(), 2)
        return widget.value()

    def _browse(self) -> None:
        folder = choose_model_folder(self, self._last_folder)
        if folder:
            index = self.model.findData(folder)
            if index < 0:
                self.model.addItem(model_label(folder), folder)
                index = self.model.count() - 1
            self.model.setCurrentIndex(index)

    def values(self) -> dict:
        return {
            **{name: self._decoding_value(name) for name in self.decoding},
            "check_below": self._value(self.check_below),
            "caption_on_open": self.caption_on_open.isChecked(),
            "restore_session": self.restore.currentData(),
            "sidecar_overwrite": self.sidecar.currentData(),
            "sidecar_kind": self.sidecar_kind.currentData(),
            "caption_extension": self.caption_extension.currentData(),
            "xmp_naming": self.xmp_naming.currentData(),
            "model_path": self.model.currentData() or "",
        }


class RewriteDialog(QDialog):
    """Edit > Find, Replace, Prefix, Suffix: one change to many captions at once."""

    def __init__(self, selected: int, total: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("rewrite")
        self.setWindowTitle("Find, Replace, Prefix, Suffix")
        self.setMinimumWidth(460)
        form = QFormLayout()
        self.find = QLineEdit()
        self.find.setPlaceholderText("text to look for (exact, case-sensitive)")
        self.replace = QLineEdit()
        self.prefix = QLineEdit()
        self.prefix.setPlaceholderText("e.g. a trigger word and a comma: \"sks_style, \"")
        self.suffix = QLineEdit()
        for label, widget in (("&Find:", self.find), ("&Replace with:", self.replace),
                              ("&Prefix:", self.prefix), ("&Suffix:", self.suffix)):
            form.addRow(label, widget)
        self.scope = QComboBox()
        self.scope.addItem(f"The {selected} selected photo{'s' if selected != 1 else ''}", "selected")
        self.scope.addItem(f"All {total} photos in the queue", "all")
        self.scope.setCurrentIndex(0 if selected > 1 else 1)
        form.addRow("&Change:", self.scope)
        hint = QLabel("A prefix or suffix already there is not added twice. Edit › Undo takes the whole change back.")
        hint.setWordWrap(True)
        hint.setEnabled(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Change Captions")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(buttons)

    def values(self) -> dict:
        return {"find": self.find.text(), "replace": self.replace.text(), "prefix": self.prefix.text(),
                "suffix": self.suffix.text(), "scope": self.scope.currentData()}


def ask_rewrite(parent: QWidget | None, selected: int, total: int) -> dict | None:
    dialog = RewriteDialog(selected, total, parent)
    return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None
