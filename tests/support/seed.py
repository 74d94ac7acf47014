"""Builders for real, small seed-topology model folders, shared by the test suites.

Two kinds of seed model are built here, both with the real seed graph
(:func:`imgcap_desktop.core.families.seed.build_seed_model`) and saved the way the
legacy app saved them (Keras 3 legacy ``.h5`` + pickled Keras ``Tokenizer``):

* :func:`make_trained_seed_folder` (what the fixtures use): a model *trained* for a
  few seconds to say distinct captions from :data:`CAPTIONS` for a handful of
  feature vectors, so decoding tests see varied captions of several lengths that
  stop in each of the seed's three ways (``endseq``, an index with no word, the
  length limit). Training the whole network takes minutes on a CPU, so only the
  head is trained: the embedding and LSTMs keep random weights (scaled so that
  different prefixes give clearly different states), the image projection is set
  to amplify differences between the feature vectors, and the ``dense`` /
  ``batchnorm`` / ``output`` layers are fitted to the seed's per-prefix targets
  (feature vector + left-padded prefix -> next word id) on noisy copies of each
  feature vector, so decoding works on unseen (noisy) inputs, not only memorised ones.
* :func:`make_seed_folder`: random weights only (degenerate captions), kept for
  tests that only need a well-formed file.

:func:`seed_reference_captions` is the legacy web app's decoding procedure written out
literally; the engine must give the same words.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CAPTIONS = [
    "startseq a dog runs on the green grass endseq",
    "startseq two children play in the water endseq",
    "startseq a man rides a red bike down the street endseq",
    "startseq a black cat sleeps on a sofa endseq",
    "startseq people walk along the beach at sunset endseq",
    "startseq a girl in a pink dress jumps endseq",
]

# What the trained model learns to say for each synthetic feature vector: (words, how it stops).
# "end": predicts endseq; "no word": predicts id 0 (padding, which has no word); "length": never
# stops by itself, so decoding runs into the length limit.
TRAINED_TARGETS: list[tuple[str, str]] = [
    *[(CAPTIONS[i].split(" ", 1)[1].rsplit(" ", 1)[0], "end") for i in (0, 1, 2, 5)],
    ("a dog jumps in the water", "no word"),
    ("people walk along the beach at sunset " * 4, "length"),
]
# What the photos (through the random DenseNet201) are trained to say, photo i -> PHOTO_TARGETS[i % n].
PHOTO_TARGETS: list[tuple[str, str]] = [
    ("a black cat sleeps", "end"),
    ("two children play", "end"),
    ("a man rides a red bike", "end"),
    ("a dog jumps", "no word"),
]


def _tokenizer(texts=CAPTIONS):
    from keras.src.legacy.preprocessing.text import Tokenizer

    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(texts)
    return tokenizer


def _save_seed_folder(folder: Path, model, tokenizer) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "image_caption.h5")  # Keras 3 writes the legacy full-model .h5 for this suffix
    with open(folder / "tokenizer.pkl", "wb") as f:
        pickle.dump(tokenizer, f)
    return folder


def make_seed_folder(folder: Path, *, max_length: int = 74, seed: int = 0, output_scale: float = 12.0,
                     end_bias: float = 2.0) -> Path:
    """image_caption.h5 + tokenizer.pkl with random weights (captions are degenerate; see the module doc)."""
    import keras

    from imgcap_desktop.core.families.seed import build_seed_model

    tokenizer = _tokenizer()
    vocab_size = len(tokenizer.word_index) + 1
    keras.utils.set_random_seed(seed)
    model, roles = build_seed_model(vocab_size, max_length)
    kernel, bias = roles["output"].get_weights()
    bias = np.zeros_like(bias)
    bias[tokenizer.word_index["endseq"]] = end_bias
    roles["output"].set_weights([kernel * output_scale, bias])
    (emb,) = roles["embedding"].get_weights()
    roles["embedding"].set_weights([emb * 40])
    k, b = roles["image_dense"].get_weights()
    roles["image_dense"].set_weights([k * 30, b])
    gamma, beta, mean, var = roles["batchnorm"].get_weights()
    roles["batchnorm"].set_weights([gamma * 1.5, beta + 0.1, mean + 0.2, var * 2.0])
    return _save_seed_folder(folder, model, tokenizer)


@dataclass
class TrainedSeed:
    folder: Path
    max_length: int
    features: np.ndarray          # (n, 1920) synthetic feature vectors the model was trained on
    targets: list[tuple[str, str]]  # (caption, stop) it was trained to give for each of them
    spread: float                 # typical distance of a feature vector from the centre
    photo_features: np.ndarray | None = None  # the photos' features, if it was trained on them too

    def noisy(self, scale: float = 0.15, seed: int = 123) -> np.ndarray:
        """The feature vectors with fresh Gaussian noise of norm about ``scale * spread``."""
        rng = np.random.default_rng(seed)
        sigma = scale * self.spread / np.sqrt(self.features.shape[1])
        return (self.features + rng.normal(0, sigma, self.features.shape)).astype(np.float32)


def _sequences(tokenizer, targets, max_length):
    """Token ids for each target, with its stop id appended (none for 'length'), cut to max_length + 1."""
    end = tokenizer.word_index["endseq"]
    out = []
    for words, stop in targets:
        ids = tokenizer.texts_to_sequences(["startseq " + words])[0]
        ids += {"end": [end], "no word": [0], "length": []}[stop]
        out.append(ids[: max_length + 1])
    return out


def make_trained_seed_folder(folder: Path, *, max_length: int = 12, photo_features: np.ndarray | None = None,
                             seed: int = 0, copies: int = 6, train_noise: float = 0.3,
                             steps: int = 400, image_to_lstm: float = 0.05,
                             image_scale: float = 0.1) -> TrainedSeed:
    """A seed model folder whose model says TRAINED_TARGETS (and PHOTO_TARGETS for ``photo_features``)."""
    import keras
    from keras.utils import pad_sequences

    from imgcap_desktop.core.families.seed import IMAGE_UNITS, build_seed_model

    rng = np.random.default_rng(seed)
    tokenizer = _tokenizer()
    vocab_size = len(tokenizer.word_index) + 1
    dim = 1920

    # Feature vectors near one centre, DenseNet-like (non-negative): the photos' own features when
    # given (a random DenseNet201 maps different photos to nearly parallel vectors), otherwise synthetic.
    if photo_features is not None:
        photo_features = np.asarray(photo_features, np.float32)
        centre = photo_features.mean(axis=0)
        spread = float(np.median(np.linalg.norm(photo_features - centre, axis=1)))
    else:
        centre = np.abs(rng.normal(0.0, 0.05, dim)).astype(np.float32)
        spread = 0.1
    features = (centre + rng.normal(0, spread / np.sqrt(dim), (len(TRAINED_TARGETS), dim))).astype(np.float32)
    features = np.maximum(features, 0.0)
    anchors, targets = [features], list(TRAINED_TARGETS)
    if photo_features is not None:
        anchors.append(photo_features)
        targets += [PHOTO_TARGETS[i % len(PHOTO_TARGETS)] for i in range(len(photo_features))]
    anchors = np.concatenate(anchors)
    sequences = _sequences(tokenizer, targets, max_length)

    keras.utils.set_random_seed(seed)
    model, roles = build_seed_model(vocab_size, max_length)
    (emb,) = roles["embedding"].get_weights()
    roles["embedding"].set_weights([emb * 20])  # default init (±0.05) makes every prefix look alike
    # image = relu(s * W^T (f - centre)): the small differences between feature vectors become visible
    # (about image_scale per unit), yet small enough for the prefix to matter as much as the photo.
    kernel, _ = roles["image_dense"].get_weights()
    kernel = kernel * (image_scale / (spread * kernel.std()))
    bias = -centre @ kernel
    roles["image_dense"].set_weights([kernel, bias])
    # The LSTM reads [attended image, BiLSTM text]. With random weights it is chaotic in its input, so
    # feature noise would scramble the prefix state; damp the image part so the words follow the prefix.
    lstm_kernel, lstm_recurrent, lstm_bias = roles["lstm"].get_weights()
    lstm_kernel[:IMAGE_UNITS] *= image_to_lstm
    roles["lstm"].set_weights([lstm_kernel, lstm_recurrent, lstm_bias])

    # The seed's training scheme: one sample per prefix (left-padded) with the next word as target,
    # here on noisy copies of every feature vector. Everything below the Add is kept fixed, so its
    # output is computed once per (prefix, feature vector) and only the head is fitted.
    prefixes = [(a, ids[:i], ids[i]) for a, ids in enumerate(sequences) for i in range(1, len(ids))]
    trunk = keras.Model(model.inputs, model.get_layer("lstm").output)
    text = trunk.predict([anchors[[a for a, _, _ in prefixes]], pad_sequences([p for _, p, _ in prefixes], max_length)],
                         batch_size=256, verbose=0)
    sigma = train_noise * spread / np.sqrt(dim)
    rows = np.array([a for a, _, _ in prefixes])
    z, y = [], []
    for copy in range(copies):
        noisy = anchors[rows] + (rng.normal(0, sigma, (len(rows), dim)) if copy else 0.0)
        z.append(text + np.maximum(noisy @ kernel + bias, 0.0))  # the Add: lstm + image_dense
        y.append([t for _, _, t in prefixes])
    z = np.concatenate(z).astype(np.float32)
    y = np.concatenate(y)

    w_dense, b_dense = roles["dense"].get_weights()
    hidden = np.maximum(z @ w_dense + b_dense, 0.0)
    mean, var = hidden.mean(axis=0), hidden.var(axis=0)
    gamma = rng.uniform(0.5, 1.5, mean.shape).astype(np.float32)
    beta = rng.normal(0, 0.1, mean.shape).astype(np.float32)
    roles["batchnorm"].set_weights([gamma, beta, mean, var])  # real, non-trivial inference statistics
    eps = roles["batchnorm"].epsilon
    h = gamma * (hidden - mean) / np.sqrt(var + eps) + beta
    w, b = _fit_softmax(h, y, vocab_size, steps=steps, rng=rng)
    roles["output"].set_weights([w, b])

    _save_seed_folder(folder, model, tokenizer)
    return TrainedSeed(folder, max_length, features, list(TRAINED_TARGETS), spread,
                       photo_features=photo_features)


def _fit_softmax(h: np.ndarray, y: np.ndarray, classes: int, *, steps: int, rng, lr: float = 0.02,
                 l2: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch Adam, in NumPy (a few hundred ms)."""
    n, d = h.shape
    w = rng.normal(0, 0.01, (d, classes)).astype(np.float32)
    b = np.zeros(classes, np.float32)
    onehot = np.eye(classes, dtype=np.float32)[y]
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    for t in range(1, steps + 1):
        logits = h @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / n
        grads = [h.T @ g + l2 * w, g.sum(axis=0)]
        for i, (param, grad) in enumerate(zip((w, b), grads)):
            m[i] = 0.9 * m[i] + 0.1 * grad
            v[i] = 0.999 * v[i] + 0.001 * grad * grad
            param -= lr * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
    return w, b


def make_densenet_weights(path: Path, seed: int = 0, *, keep_model: bool = False):
    """Random DenseNet201 weights in the no-top layout of the file Keras would download.

    With ``keep_model`` also returns the Keras model holding them (saves building it again).
    """
    import keras
    from keras.applications import DenseNet201

    keras.utils.set_random_seed(seed)
    model = DenseNet201(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
    model.save_weights(str(path))
    return (path, model) if keep_model else path


def make_photos(folder: Path, count: int = 4, size=(160, 120)) -> list[Path]:
    """Distinct real JPEG files with structure (gradients and blocks), not flat colour."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        w, h = size[0] + 17 * i, size[1] + 9 * i
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (3 + i)) % 256, (yy * (5 + 2 * i)) % 256, ((xx + yy) * (i + 1)) % 256], -1)
        noise = rng.integers(0, 40, base.shape)
        arr = np.clip(base + noise, 0, 255).astype("uint8")
        path = folder / f"photo_{i}.jpg"
        Image.fromarray(arr).save(path, quality=92)
        paths.append(path)
    return paths


# --- the legacy procedure, literally -------------------------------------------------------------


def seed_photo_features(densenet_weights: Path, photos: list[Path], *, model=None) -> np.ndarray:
    """The seed app's feature extraction: load_img (nearest), preprocess_input, DenseNet201 avg pool, per photo.

    ``model``: a DenseNet201 (no top, avg pool) already holding ``densenet_weights``.
    """
    import keras
    from keras.applications import DenseNet201, densenet

    fe = model
    if fe is None:
        fe = DenseNet201(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
        fe.load_weights(str(densenet_weights))
    out = []
    for path in photos:
        img = keras.utils.load_img(path, target_size=(224, 224))
        img = keras.utils.img_to_array(img)[None]
        out.append(fe.predict(densenet.preprocess_input(img), verbose=0)[0])
    return np.stack(out)


def seed_reference_decode(model_h5: Path, tokenizer_pkl: Path, features: np.ndarray,
                          max_length: int = 74) -> list[tuple[str, str]]:
    """The legacy app's greedy loop, per feature vector: (caption, why it stopped: 'end' / 'no word' / 'length')."""
    from imgcap_desktop.core.families.seed import build_seed_model
    from imgcap_desktop.core.vocab import load_legacy_tokenizer

    with open(tokenizer_pkl, "rb") as f:
        tokenizer = pickle.load(f)  # trusted: the test wrote it
    vocab_size = len(tokenizer.word_index) + 1
    model, _ = build_seed_model(vocab_size, max_length)
    model.load_weights(str(model_h5))
    assert load_legacy_tokenizer(tokenizer_pkl).size == vocab_size
    return legacy_greedy(model, tokenizer, features, steps=max_length, max_length=max_length)


def legacy_greedy(model, tokenizer, features, *, steps: int, max_length: int) -> list[tuple[str, str]]:
    """The legacy web app's decoding loop, literally, one image at a time: per step
    ``texts_to_sequences`` + ``pad_sequences`` (window ``max_length``) + ``model.predict`` + a
    linear scan of ``word_index``, at most ``steps`` words.

    Returns (caption, why it stopped: 'end' / 'no word' / 'length') per feature vector. The tests
    compare the engine with it, and ``benchmarks/bench_seed_decoding.py`` times it.
    """
    from keras.utils import pad_sequences

    def idx_to_word(integer):
        for word, index in tokenizer.word_index.items():
            if index == integer:
                return word
        return None

    results = []
    for feature in np.asarray(features, np.float32):
        feature = feature[None]
        in_text = "startseq"
        stop = "length"
        for _ in range(steps):
            sequence = tokenizer.texts_to_sequences([in_text])[0]
            sequence = pad_sequences([sequence], max_length)
            y_pred = model.predict([feature, sequence], verbose=0)
            word = idx_to_word(int(np.argmax(y_pred)))
            if word is None:
                stop = "no word"
                break
            in_text += " " + word
            if word == "endseq":
                stop = "end"
                break
        words = in_text.split()[1:]
        if words and words[-1] == "endseq":
            words = words[:-1]
        results.append((" ".join(words), stop))
    return results


def seed_reference_captions(model_h5: Path, tokenizer_pkl: Path, densenet_weights: Path,
                            photos: list[Path], max_length: int = 74) -> list[str]:
    """The legacy web app's procedure, written out literally: load_img, predict per step, linear word lookup."""
    features = seed_photo_features(densenet_weights, photos)
    return [c for c, _ in seed_reference_decode(model_h5, tokenizer_pkl, features, max_length)]
