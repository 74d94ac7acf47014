"""The seed decoder without TensorFlow: role-keyed weights and the NumPy step model against Keras."""

from __future__ import annotations

import numpy as np
import pytest

from imgcap_desktop.core import decoding
from imgcap_desktop.core.families import seed
from imgcap_desktop.core.families.seed_numpy import NumpySeedStepModel
from imgcap_desktop.core.families.seed_weights import ROLES, read_roles, write_roles

pytestmark = pytest.mark.slow


def _numpy_model(seed_bundle):
    from imgcap_desktop.core.bundle import read_bundle

    bundle = read_bundle(seed_bundle)
    config = bundle.manifest.family_config
    return bundle, NumpySeedStepModel(read_roles(bundle.file(bundle.manifest.weights)), config["max_length"])


def test_the_bundle_keeps_the_seed_arrays_by_role_and_keras_layout_files_read_the_same(seed_assets, seed_bundle,
                                                                                        tmp_path):
    source = seed_assets["folder"] / "image_caption.h5"
    vocab_size = seed.vocab_size_of_legacy_h5(source)
    legacy = seed.read_legacy_h5(source, vocab_size)
    stored = read_roles(seed_bundle / "decoder.weights.h5")
    assert set(stored) == set(ROLES)
    for role in ROLES:
        assert [a.shape for a in stored[role]] == [a.shape for a in legacy[role]]
        assert all(np.array_equal(a, b) for a, b in zip(stored[role], legacy[role])), role
    # A bundle from an earlier version holds Keras 3's own layout: the same arrays come out.
    model, roles = seed.SeedFamily.build({"vocab_size": vocab_size, "max_length": 74, "feature_dim": 1920})
    seed.SeedFamily.set_role_weights(roles, legacy)
    model.save_weights(str(tmp_path / "keras.weights.h5"))
    from_keras = read_roles(tmp_path / "keras.weights.h5")
    for role in ROLES:
        assert all(np.array_equal(a, b) for a, b in zip(from_keras[role], legacy[role])), role
    # And a role file written here loads into the Keras graph unchanged.
    write_roles(from_keras, tmp_path / "again.h5")
    assert all(np.array_equal(a, b) for r in ROLES for a, b in zip(read_roles(tmp_path / "again.h5")[r], legacy[r]))


def test_numpy_steps_give_the_keras_log_probabilities(seed_bundle, seed_reference):
    from imgcap_desktop.core.bundle import read_bundle

    bundle, numpy_model = _numpy_model(seed_bundle)
    config = bundle.manifest.family_config
    keras_model = seed.SeedFamily.load_step_model(config, bundle.file(bundle.manifest.weights))
    features = seed_reference["features"][:5]
    (k_ctx,), (k_state,) = keras_model.begin(features)
    n_ctx, n_state = numpy_model.begin(features)
    k_ctx, k_state = (k_ctx,), (k_state,)
    rng = np.random.default_rng(0)
    start = bundle.vocabulary.id_of(bundle.manifest.tokens["start"])
    tokens = np.full(len(features), start, np.int32)
    for _ in range(6):
        k_out = keras_model.step(k_ctx, k_state, tokens)
        n_out = numpy_model.step(n_ctx, n_state, tokens)
        np.testing.assert_allclose(n_out.log_probs, k_out.log_probs, atol=2e-4, rtol=1e-4)
        k_state, n_state = k_out.state, n_out.state
        tokens = rng.integers(4, numpy_model.vocab_size, len(features)).astype(np.int32)
    assert read_bundle(seed_bundle).manifest.family == "seed"


def test_numpy_decoding_gives_the_seed_procedures_words(seed_bundle, seed_reference):
    bundle, model = _numpy_model(seed_bundle)
    stops = decoding.Stops.from_vocabulary(bundle.vocabulary, model.vocab_size)
    start = bundle.vocabulary.id_of(bundle.manifest.tokens["start"])
    hyps = decoding.greedy(model, seed_reference["features"], start_id=start, stops=stops,
                           max_length=seed_reference["max_length"])
    words = [" ".join(bundle.vocabulary.word_of(t) for t in h.tokens) for h in hyps]
    assert words == [c for c, _ in seed_reference["for_features"]]
    # Rows at different depths (never the case in decoding, but allowed) give each row's own result.
    ctx, state = model.begin(seed_reference["features"][:2])
    out = model.step(ctx, state, np.array([start, start], np.int32))
    window, count = out.state
    uneven = (window, np.array([1, 2]))
    both = model.step(ctx, uneven, np.array([5, 6], np.int32)).log_probs
    alone = model.step(model.select(ctx, [1]), (window[1:], np.array([2])), np.array([6], np.int32)).log_probs
    np.testing.assert_allclose(both[1], alone[0], atol=1e-5)
