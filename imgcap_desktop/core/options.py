"""The one declarative table of user settings, and the decoding options built from it.

The GUI persists these through QSettings and shows the decoding ones in its Settings
dialog; the CLI exposes the decoding ones (``cli=True``) as flags. Both read names,
types, limits and defaults from here, and both hand the engine a :class:`DecodeOptions`,
so the two never drift.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class Option:
    name: str          # QSettings key and, with "_" -> "-", the CLI flag
    type: type
    default: Any
    help: str
    cli: bool = False  # a decoding option: a flag of `imgcap caption`, a field of DecodeOptions
    minimum: float | None = None
    maximum: float | None = None
    label: str = ""    # the Settings dialog's row label
    special: str = ""  # what the dialog shows at the minimum (e.g. "model's choice")
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        """A typed value from a command line; ValueError says what is allowed."""
        try:
            value = self.type(text)
        except ValueError:
            kind = {int: "a whole number", float: "a number"}.get(self.type, self.type.__name__)
            raise ValueError(f"{text!r} is not {kind}") from None
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise ValueError(f"{text} is outside {self.minimum:g}..{self.maximum:g}")
        return value

    def coerce(self, value: Any) -> Any:
        """Best-effort conversion of a stored value; falls back to the default when unusable."""
        try:
            if self.type is bool:
                if isinstance(value, str):
                    return value.strip().lower() in {"1", "true", "yes", "on"}
                return bool(value)
            if self.type is list:
                if value is None or value == "":
                    return []
                return [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            if value is None:
                return self.default
            converted = self.type(value)
        except (TypeError, ValueError):
            return self.default
        if self.choices and converted not in self.choices:
            return self.default
        if self.minimum is not None and converted < self.minimum:
            return self.default
        if self.maximum is not None and converted > self.maximum:
            return self.default
        return converted


OPTIONS: tuple[Option, ...] = (
    Option("beam", int, 0, "beam width; 1 is greedy, 0 uses the model's recommended width", cli=True,
           minimum=0, maximum=10, label="&Beam width:", special="model's choice"),
    Option("max_length", int, 0, "longest caption in tokens; 0 uses the model's own limit", cli=True,
           minimum=0, maximum=200, label="&Longest caption (words):", special="model's limit"),
    Option("batch_size", int, 8, "photos encoded together", cli=True, minimum=1, maximum=256,
           label="Photos per &batch:"),
    Option("length_penalty", float, None, "beam score = log-prob / length**penalty; 0 ranks by log-prob alone",
           cli=True, minimum=0.0, maximum=3.0, label="Length &penalty:", special="model's choice"),
    Option("keyword_guide", float, None, "a keyword the ImageNet head gives at least this probability must be "
           "named in the caption (constrained beam search); 0 turns it off", cli=True, minimum=0.0, maximum=1.0,
           label="&Name keywords above:", special="model's choice"),
    Option("caption_on_open", bool, True, "caption photos as soon as they are added"),
    Option("check_below", float, None, "captions whose confidence is below this get a 'check' badge; "
           "unset uses the model's suggestion", minimum=0.0, maximum=1.0, label="&Check captions below:",
           special="model's suggestion"),
    Option("restore_session", str, "ask", "reopen the last queue on launch: always, ask or never",
           choices=("always", "ask", "never")),
    Option("model_path", str, "", "model bundle or seed folder; empty for the default model"),
    Option("recent_models", list, [], "recently used model folders"),
    Option("recent_files", list, [], "recently opened photos and folders"),
    Option("last_folder", str, "", "folder of the last open dialog"),
    Option("sidecar_overwrite", str, "ask", "existing NAME.txt: ask, overwrite or skip",
           choices=("ask", "overwrite", "skip")),
    Option("sidecar_kind", str, "txt", "what Save Sidecar writes: a caption file, an XMP sidecar, or both",
           choices=("txt", "xmp", "txt+xmp")),
    Option("caption_extension", str, ".txt", "the caption file's extension (.caption for kohya and OneTrainer)",
           choices=(".txt", ".caption")),
    Option("xmp_naming", str, "full", "XMP sidecar name: NAME.jpg.xmp (darktable, digiKam) or NAME.xmp (Lightroom)",
           choices=("full", "base")),
    Option("window_geometry", bytes, b"", "main window geometry"),
    Option("window_state", bytes, b"", "main window and splitter state"),
)

BY_NAME = {option.name: option for option in OPTIONS}
DECODING_OPTIONS = tuple(option for option in OPTIONS if option.cli)


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode, as asked (0 / None: the model's own choice) or as resolved against a manifest.

    Its fields are the table's ``cli`` options, checked at import below.
    """

    beam: int = 0
    max_length: int = 0
    batch_size: int = 8
    length_penalty: float | None = None
    keyword_guide: float | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "DecodeOptions":
        """From settings or parsed CLI flags; a missing or unusable value takes the table's default."""
        return cls(**{o.name: o.coerce(values[o.name]) if o.name in values else o.default for o in DECODING_OPTIONS})

    def resolved(self, *, beam: int, max_length: int, length_penalty: float,
                 keyword_guide: float) -> "DecodeOptions":
        """The model's defaults filled in where the user left the choice to the model."""
        return replace(self, beam=self.beam or beam, max_length=self.max_length or max_length,
                       length_penalty=length_penalty if self.length_penalty is None else self.length_penalty,
                       keyword_guide=keyword_guide if self.keyword_guide is None else self.keyword_guide)

    def as_kwargs(self) -> dict[str, Any]:
        return {o.name: getattr(self, o.name) for o in DECODING_OPTIONS}



def default(name: str) -> Any:
    return BY_NAME[name].default
