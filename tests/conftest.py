"""Session-wide fixtures: real (small) models built once and shared."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def seed_assets(tmp_path_factory):
    """A trained seed model folder, random DenseNet201 weights and a few photos.

    Keys: ``folder`` (image_caption.h5 + tokenizer.pkl), ``densenet`` (weights file),
    ``photos`` (JPEG paths), ``trained`` (:class:`tests.support.seed.TrainedSeed`: the
    feature vectors the model was trained on and what it says for them),
    ``photo_features`` (the photos' features, computed the seed app's way).
    """
    from tests.support.seed import make_densenet_weights, make_photos, make_trained_seed_folder, seed_photo_features

    root = tmp_path_factory.mktemp("seed")
    weights, densenet = make_densenet_weights(root / "densenet201_notop.weights.h5", keep_model=True)
    photos = make_photos(root / "photos", count=4)
    photo_features = seed_photo_features(weights, photos, model=densenet)
    del densenet
    trained = make_trained_seed_folder(root / "seed_models", photo_features=photo_features)
    return {"folder": trained.folder, "densenet": weights, "photos": photos, "trained": trained,
            "photo_features": photo_features}


@pytest.fixture(scope="session")
def seed_bundle(seed_assets, tmp_path_factory):
    from imgcap_desktop.core.seed_import import import_seed

    out = tmp_path_factory.mktemp("bundles") / "seed_bundle"
    return import_seed(seed_assets["folder"], out, encoder_weights=seed_assets["densenet"])


@pytest.fixture(scope="session")
def seed_reference(seed_assets):
    """What the legacy procedure says, literally, for noisy copies of the trained feature vectors and for the photos.

    ``features``: the (unseen) noisy feature vectors; ``for_features`` / ``for_photos``: lists of
    (caption, how it stopped) with stop in 'end', 'no word', 'length'.
    """
    from tests.support.seed import seed_reference_decode

    trained = seed_assets["trained"]
    h5, pkl = trained.folder / "image_caption.h5", trained.folder / "tokenizer.pkl"
    features = trained.noisy()
    both = seed_reference_decode(h5, pkl, list(features) + list(seed_assets["photo_features"]), trained.max_length)
    return {"features": features, "for_features": both[: len(features)], "for_photos": both[len(features):],
            "max_length": trained.max_length}


@pytest.fixture(scope="session")
def seed_cache_home(tmp_path_factory):
    """An XDG cache folder for imports of seed folders (never the user's own)."""
    return tmp_path_factory.mktemp("xdg_cache")


@pytest.fixture(scope="session")
def seed_captioner(seed_assets, seed_cache_home):
    """A Captioner loaded straight from the seed folder (imported on the fly into seed_cache_home)."""
    from imgcap_desktop.core.captioner import Captioner

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(seed_cache_home))
        return Captioner.load(seed_assets["folder"], encoder_weights=seed_assets["densenet"])


def pytest_configure(config):
    # The seed attends from every token to one image vector, so Keras warns that its softmax runs over an
    # axis of size 1 (core/families/seed.py explains why that is kept); and Keras' own NumPy 2 shim warns
    # on every predict. Neither is about this project's code.
    config.addinivalue_line("filterwarnings", "ignore:You are using a softmax over axis -1:UserWarning")
    config.addinivalue_line("filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword")
