"""Builders for a real, small seed-topology model folder, shared by the test suites.

The model is the real seed graph with a small vocabulary and random weights; its
output layer is scaled up so that arg-max decisions are far from ties and two
correct implementations agree word for word.
"""

from __future__ import annotations

import pickle
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


def make_seed_folder(folder: Path, *, max_length: int = 74, seed: int = 0, output_scale: float = 12.0,
                     end_bias: float = 2.0) -> Path:
    """image_caption.h5 + tokenizer.pkl as the legacy app saved them (Keras 3 legacy .h5, pickled Tokenizer)."""
    import keras
    from keras.src.legacy.preprocessing.text import Tokenizer

    from imgcap_desktop.core.families.seed import build_seed_model

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(CAPTIONS)
    vocab_size = len(tokenizer.word_index) + 1
    keras.utils.set_random_seed(seed)
    model, roles = build_seed_model(vocab_size, max_length)
    rng = np.random.default_rng(seed)
    kernel, bias = roles["output"].get_weights()
    # Word choice driven by the hidden state (not a constant bias); the end token made likelier so that
    # captions stop at different lengths.
    bias = np.zeros_like(bias)
    bias[tokenizer.word_index["endseq"]] = end_bias
    roles["output"].set_weights([kernel * output_scale, bias])
    # Glorot-sized random weights make every input look alike; larger embeddings and image projection
    # make the words depend on both the prefix and the photo, as in a trained model.
    (emb,) = roles["embedding"].get_weights()
    roles["embedding"].set_weights([emb * 40])
    k, b = roles["image_dense"].get_weights()
    roles["image_dense"].set_weights([k * 30, b])
    # Non-trivial batch-norm statistics, so inference mode is actually exercised.
    gamma, beta, mean, var = roles["batchnorm"].get_weights()
    roles["batchnorm"].set_weights([gamma * 1.5, beta + 0.1, mean + 0.2, var * 2.0])
    model.save(folder / "image_caption.h5")
    with open(folder / "tokenizer.pkl", "wb") as f:
        pickle.dump(tokenizer, f)
    return folder


def make_densenet_weights(path: Path, seed: int = 0) -> Path:
    """Random DenseNet201 weights in the no-top layout of the file Keras would download."""
    import keras
    from keras.applications import DenseNet201

    keras.utils.set_random_seed(seed)
    model = DenseNet201(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
    model.save_weights(str(path))
    return path


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


def seed_reference_captions(model_h5: Path, tokenizer_pkl: Path, densenet_weights: Path,
                            photos: list[Path], max_length: int = 74) -> list[str]:
    """The legacy web app's procedure, written out literally: load_img, predict per step, linear word lookup."""
    import keras
    from keras.applications import DenseNet201, densenet
    from keras.utils import pad_sequences

    from imgcap_desktop.core.families.seed import build_seed_model
    from imgcap_desktop.core.vocab import load_legacy_tokenizer

    with open(tokenizer_pkl, "rb") as f:
        tokenizer = pickle.load(f)  # trusted: the test wrote it
    vocab_size = len(tokenizer.word_index) + 1
    model, _ = build_seed_model(vocab_size, max_length)
    model.load_weights(str(model_h5))
    fe = DenseNet201(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
    fe.load_weights(str(densenet_weights))
    assert load_legacy_tokenizer(tokenizer_pkl).size == vocab_size

    def idx_to_word(integer):
        for word, index in tokenizer.word_index.items():
            if index == integer:
                return word
        return None

    captions = []
    for path in photos:
        img = keras.utils.load_img(path, target_size=(224, 224))
        img = keras.utils.img_to_array(img)[None]
        feature = fe.predict(densenet.preprocess_input(img), verbose=0)
        in_text = "startseq"
        for _ in range(max_length):
            sequence = tokenizer.texts_to_sequences([in_text])[0]
            sequence = pad_sequences([sequence], max_length)
            y_pred = model.predict([feature, sequence], verbose=0)
            word = idx_to_word(int(np.argmax(y_pred)))
            if word is None:
                break
            in_text += " " + word
            if word == "endseq":
                break
        words = in_text.split()[1:]
        if words and words[-1] == "endseq":
            words = words[:-1]
        captions.append(" ".join(words))
    return captions
