"""QSettings persistence driven by the declarative table in core.options."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from imgcap_desktop.core.options import BY_NAME, OPTIONS, DecodeOptions

ORGANIZATION = "imgcap"
APPLICATION = "imgcap-desktop"
RECENT_LIMIT = 10
SIDECAR_POLICIES = BY_NAME["sidecar_overwrite"].choices
RESTORE_POLICIES = BY_NAME["restore_session"].choices


class Settings:
    """Typed access to every entry of ``OPTIONS``; unknown names are a programming error."""

    def __init__(self, store: QSettings | None = None):
        self.store = store if store is not None else QSettings(ORGANIZATION, APPLICATION)

    def get(self, name: str) -> Any:
        option = BY_NAME[name]
        if not self.store.contains(name):
            return _copy_default(option.default)
        raw = self.store.value(name)
        if option.type is bytes:
            # QSettings hands back QByteArray (native) or str (some INI round trips).
            if isinstance(raw, QByteArray):
                return raw.data()
            if isinstance(raw, (bytes, bytearray)):
                return bytes(raw)
            return option.default
        return option.coerce(raw)

    def set(self, name: str, value: Any) -> None:
        option = BY_NAME[name]
        if option.type is bytes:
            self.store.setValue(name, QByteArray(bytes(value)))
        elif value is None:
            self.store.remove(name)  # reads back as the default (e.g. "the model's own")
        elif option.type is list:
            # An empty list reads back as None from INI files; coerce() maps that to [].
            self.store.setValue(name, [str(v) for v in value])
        else:
            self.store.setValue(name, option.coerce(value))

    def all(self) -> dict[str, Any]:
        return {option.name: self.get(option.name) for option in OPTIONS}

    def decoding_options(self) -> DecodeOptions:
        return DecodeOptions.from_values(self.all())

    def add_recent(self, name: str, entry: str, limit: int = RECENT_LIMIT) -> list[str]:
        entries = [e for e in self.get(name) if e != entry]
        entries.insert(0, entry)
        del entries[limit:]
        self.set(name, entries)
        return entries

    def remove_recent(self, name: str, entry: str) -> None:
        self.set(name, [e for e in self.get(name) if e != entry])

    def sync(self) -> None:
        self.store.sync()


def _copy_default(value: Any) -> Any:
    # The defaults live in a shared frozen table: hand out copies of mutable ones.
    return list(value) if isinstance(value, list) else value
