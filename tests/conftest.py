"""Session-wide fixtures: real (small) models built once and shared."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def seed_assets(tmp_path_factory):
    """A seed model folder, random DenseNet201 weights and a few photos."""
    from tests.support.seed import make_densenet_weights, make_photos, make_seed_folder

    root = tmp_path_factory.mktemp("seed")
    folder = make_seed_folder(root / "seed_models")
    weights = make_densenet_weights(root / "densenet201_notop.weights.h5")
    photos = make_photos(root / "photos", count=4)
    return {"folder": folder, "densenet": weights, "photos": photos}


@pytest.fixture(scope="session")
def seed_bundle(seed_assets, tmp_path_factory):
    from imgcap_desktop.core.seed_import import import_seed

    out = tmp_path_factory.mktemp("bundles") / "seed_bundle"
    return import_seed(seed_assets["folder"], out, encoder_weights=seed_assets["densenet"])
