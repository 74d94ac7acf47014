"""Model families, looked up by the name a bundle's manifest gives.

Modules are imported on first use so that reading a manifest never imports
TensorFlow.
"""

from __future__ import annotations

import importlib

from imgcap_desktop.core.families.base import Family

_MODULES = {
    "seed": "imgcap_desktop.core.families.seed",
    "attend": "imgcap_desktop.core.families.attend",
}


def known_families() -> tuple[str, ...]:
    return tuple(_MODULES)


def get_family(name: str) -> type[Family]:
    module = importlib.import_module(_MODULES[name])
    return module.FAMILY
