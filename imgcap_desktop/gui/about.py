"""Help > About: the version, the loaded model's card, and the licences of what ships."""

from __future__ import annotations

import platform
from pathlib import Path

from PySide6 import __version__ as pyside_version
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTabWidget, QTextBrowser, QVBoxLayout, QWidget

from imgcap_desktop import __version__
from imgcap_desktop.core.paths import default_bundle_dir

from .paths import resource_path

#: The libraries the app is made of, with their licences (the packaged app ships all of them).
LIBRARIES = (
    ("Qt for Python (PySide6)", "LGPL-3.0"),
    ("LiteRT / TensorFlow", "Apache-2.0"),
    ("Keras", "Apache-2.0"),
    ("NumPy", "BSD-3-Clause"),
    ("Pillow", "MIT-CMU (HPND)"),
    ("h5py", "BSD-3-Clause"),
    ("tqdm", "MPL-2.0 and MIT"),
    ("pi-heif (libheif LGPL-3.0, libde265 LGPL-3.0)", "BSD-3-Clause"),
    ("rawpy (LibRaw LGPL-2.1 or CDDL-1.0)", "MIT"),
    ("python-exiv2 (Exiv2 GPL-2.0-or-later)", "GPL-3.0-or-later"),
)
#: Why the packaged app as a whole is under the GPL, while this project's own code is MIT.
GPL_NOTE = ("The packaged app includes GPL components (Exiv2 and its Python binding), so the packaged app "
            "as a whole is distributed under the GNU GPL, version 3 or later; the source of imgcap-desktop "
            "itself is MIT-licensed.")


def model_folder(model_path: str) -> Path:
    return Path(model_path) if model_path else default_bundle_dir()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def licences_markdown(folder: Path) -> str:
    parts = ["# imgcap-desktop\n\nMIT licence.\n\n## Libraries\n"]
    parts += [f"- {name}: {licence}" for name, licence in LIBRARIES]
    parts += ["", GPL_NOTE]
    for title, path in (("The model's weights", None), ("Sample photos", resource_path("samples", "LICENSE.md"))):
        if path is None:
            files = sorted(folder.glob("*LICENSE*.md")) if folder.is_dir() else []
            texts = [t for t in (_read(f) for f in files) if t]
        else:
            texts = [t for t in [_read(path)] if t]
        if texts:
            parts.append(f"\n## {title}\n")
            parts += texts
    return "\n".join(parts)


class AboutDialog(QDialog):
    def __init__(self, model_name: str | None, model_path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("about")
        self.setWindowTitle("About Image Caption")
        self.resize(720, 560)
        folder = model_folder(model_path)

        heading = QLabel(
            f"<h2>Image Caption {__version__}</h2>"
            f"<p>Offline photo captions on your own computer: nothing is uploaded.</p>"
            f"<p>Model: <b>{model_name or 'none loaded'}</b><br>Folder: {folder}</p>"
            f"<p><small>Python {platform.python_version()}, PySide6 {pyside_version}</small></p>")
        heading.setWordWrap(True)

        self.tabs = QTabWidget()
        card = _read(folder / "MODEL_CARD.md")
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(True)
        self.card.setMarkdown(card or f"The model in {folder} has no MODEL_CARD.md.")
        self.tabs.addTab(self.card, "Model card")
        self.licences = QTextBrowser()
        self.licences.setOpenExternalLinks(True)
        self.licences.setMarkdown(licences_markdown(folder))
        self.tabs.addTab(self.licences, "Licences")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(buttons)
