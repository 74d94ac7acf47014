"""Typed errors whose ``str()`` is one sentence a user can act on.

Every error the engine raises on bad input derives from :class:`ImgcapError`, so
the CLI and the GUI can report it for one file and carry on with the rest.
"""

from __future__ import annotations

from pathlib import Path


class ImgcapError(Exception):
    """Base class: the message is one plain sentence, naming the file at fault."""


# --- images -----------------------------------------------------------------


class ImageLoadError(ImgcapError):
    """An image could not be turned into RGB pixels."""

    reason = "cannot be read"

    def __init__(self, path: str | Path, detail: str | None = None):
        self.path = Path(path)
        self.detail = detail
        message = f"{self.path.name}: {self.reason}"
        if detail:
            message += f" ({detail})"
        super().__init__(message + ".")


class NotAnImageError(ImageLoadError):
    reason = "is not an image file Pillow can read"


class CorruptImageError(ImageLoadError):
    reason = "is corrupt or truncated"


class ImageTooLargeError(ImageLoadError):
    reason = "is too large to open safely"


class UnreadableFileError(ImageLoadError):
    reason = "cannot be opened"


# --- models -----------------------------------------------------------------


class BundleError(ImgcapError):
    """A model bundle (or a seed model folder) is missing, incomplete or tampered with."""


class UnsafePickleError(BundleError):
    """A pickle asked for something other than the legacy Keras Tokenizer."""


class EncoderWeightsMissingError(BundleError):
    """The image encoder needs a weights file that is not available offline."""


# --- saving -----------------------------------------------------------------


class SaveError(ImgcapError):
    """A caption could not be written to a sidecar, an export file or an image.

    The message names the file and what the user can do; ``path`` is the file.
    Whenever this is raised the target file is left exactly as it was.
    """

    def __init__(self, path: str | Path, message: str):
        self.path = Path(path)
        super().__init__(message)


class SidecarExistsError(SaveError):
    """The sidecar already exists: the caller should ask before overwriting."""

    def __init__(self, path: str | Path):
        path = Path(path)
        super().__init__(
            path, f"{path.name} already exists; choose Overwrite to replace it."
        )


class MetadataFormatError(SaveError):
    """The image format cannot carry a caption in its own metadata."""
