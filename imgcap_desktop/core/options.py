"""The one declarative table of user settings.

The GUI persists these through QSettings and the CLI exposes the decoding ones as
flags, both reading names, types and defaults from here, so the two never drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    name: str          # QSettings key and, with "_" -> "-", the CLI flag
    type: type
    default: Any
    help: str
    cli: bool = False  # exposed by `imgcap caption`
    minimum: int | None = None
    maximum: int | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

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
            converted = self.type(value)
        except (TypeError, ValueError):
            return self.default
        if self.minimum is not None and converted < self.minimum:
            return self.default
        if self.maximum is not None and converted > self.maximum:
            return self.default
        return converted


OPTIONS: tuple[Option, ...] = (
    Option("beam", int, 0, "beam width; 1 is greedy, 0 uses the model's recommended width", cli=True, minimum=0, maximum=10),
    Option("max_length", int, 0, "longest caption in tokens; 0 uses the model's own limit", cli=True, minimum=0, maximum=200),
    Option("batch_size", int, 8, "photos encoded together", cli=True, minimum=1, maximum=256),
    Option("model_path", str, "", "model bundle or seed folder; empty for the default model"),
    Option("recent_models", list, [], "recently used model folders"),
    Option("recent_files", list, [], "recently opened photos and folders"),
    Option("last_folder", str, "", "folder of the last open dialog"),
    Option("sidecar_overwrite", str, "ask", "existing NAME.txt: ask, overwrite or skip"),
    Option("window_geometry", bytes, b"", "main window geometry"),
    Option("window_state", bytes, b"", "main window and splitter state"),
)

BY_NAME = {option.name: option for option in OPTIONS}


def default(name: str) -> Any:
    return BY_NAME[name].default
