"""The legacy seed topology (DenseNet201 features + attention / bidirectional LSTM).

Rebuilt layer for layer in code, because ``keras.models.load_model`` cannot read
the seed's ``.h5`` in current Keras (the Attention layer's ``score_mode`` comes
back as a function). Weights are matched to layers by shape, which is
unambiguous for this topology and independent of the layer names and creation
order the original notebook happened to use.

At every step the seed re-reads the whole left-padded prefix of ``max_length``
tokens, so a step costs O(max_length); the state here is that padded buffer.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from imgcap_desktop.core import limits
from imgcap_desktop.core.errors import BundleError
from imgcap_desktop.core.families.base import Family, StepOutput, TensorStepModel, WeightSpec

# The seed attends from every token to a single image vector, so Keras' softmax runs over an axis
# of size 1 (weights are always 1). That is the seed's design, not a bug here: keep it, quietly.
warnings.filterwarnings("ignore", message="You are using a softmax over axis -1 of a tensor of shape .*size 1")

EMBED = 256
IMAGE_UNITS = 512
BILSTM_UNITS = 256
LSTM_UNITS = 512


def layer_shapes(vocab_size: int, feature_dim: int) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Weight shapes per role, in ``get_weights()`` order."""
    v = vocab_size
    bi = (BILSTM_UNITS * 4,)
    return {
        "embedding": ((v, EMBED),),
        "image_dense": ((feature_dim, IMAGE_UNITS), (IMAGE_UNITS,)),
        "bilstm": ((EMBED, 4 * BILSTM_UNITS), (BILSTM_UNITS, 4 * BILSTM_UNITS), bi) * 2,
        "lstm": ((IMAGE_UNITS + 2 * BILSTM_UNITS, 4 * LSTM_UNITS), (LSTM_UNITS, 4 * LSTM_UNITS), (4 * LSTM_UNITS,)),
        "dense": ((LSTM_UNITS, 512), (512,)),
        "batchnorm": ((512,),) * 4,
        "output": ((512, v), (v,)),
    }


def build_seed_model(vocab_size: int, max_length: int = 74, feature_dim: int = 1920):
    """The seed's Keras graph, returned with its layers keyed by role."""
    import keras
    from keras import layers

    image_in = keras.Input(shape=(feature_dim,), name="image_features")
    tokens_in = keras.Input(shape=(max_length,), name="tokens")
    roles = {
        "image_dense": layers.Dense(IMAGE_UNITS, activation="relu", name="image_dense"),
        "embedding": layers.Embedding(vocab_size, EMBED, name="embedding"),
        "bilstm": layers.Bidirectional(layers.LSTM(BILSTM_UNITS, return_sequences=True), name="bilstm"),
        "attention": layers.Attention(name="attention"),
        "lstm": layers.LSTM(LSTM_UNITS, name="lstm"),
        "dense": layers.Dense(512, activation="relu", name="dense"),
        "batchnorm": layers.BatchNormalization(name="batchnorm"),
        "output": layers.Dense(vocab_size, activation="softmax", name="output"),
    }
    image = roles["image_dense"](image_in)
    image_seq = layers.Reshape((1, IMAGE_UNITS), name="image_reshape")(image)
    text = roles["embedding"](tokens_in)
    text = roles["bilstm"](text)
    attended = roles["attention"]([text, image_seq])
    merged = layers.Concatenate(name="concat")([attended, text])
    x = roles["lstm"](merged)
    x = layers.Dropout(0.5, name="dropout_1")(x)
    x = layers.Add(name="add")([x, image])
    x = roles["dense"](x)
    x = roles["batchnorm"](x)
    x = layers.Dropout(0.5, name="dropout_2")(x)
    out = roles["output"](x)
    model = keras.Model([image_in, tokens_in], out, name="seed_caption_model")
    return model, roles


def _h5_arrays(group) -> list[np.ndarray]:
    """Every dataset below ``group`` in the order its layer declared them."""
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])]
    if names:
        return [np.asarray(group[n]) for n in names]
    found: list[np.ndarray] = []
    group.visititems(lambda _, obj: found.append(np.asarray(obj)) if hasattr(obj, "shape") else None)
    return found


def read_legacy_h5(path: Path, vocab_size: int, feature_dim: int = 1920) -> dict[str, list[np.ndarray]]:
    """Weights of a legacy full-model ``.h5`` (``model.save('x.h5')``), keyed by role.

    Only arrays are read (h5py, no Keras deserialisation), so nothing in the file
    can run code.
    """
    import h5py

    expected = layer_shapes(vocab_size, feature_dim)
    by_signature = {tuple(shapes): role for role, shapes in expected.items()}
    roles: dict[str, list[np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            names = [n.decode() if isinstance(n, bytes) else n for n in root.attrs.get("layer_names", list(root.keys()))]
            for name in names:
                arrays = _h5_arrays(root[name])
                if not arrays:
                    continue
                signature = tuple(a.shape for a in arrays)
                role = by_signature.get(signature)
                if role is None or role in roles:
                    raise BundleError(
                        f"{path.name}: layer '{name}' has weights of shapes {list(signature)[:4]}, "
                        f"which the seed topology with a vocabulary of {vocab_size} words does not have.")
                roles[role] = arrays
    except BundleError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"{path.name}: not a readable Keras .h5 weights file ({exc}).") from None
    missing = sorted(set(expected) - set(roles))
    if missing:
        raise BundleError(f"{path.name}: no weights for the seed model's {', '.join(missing)} layer(s).")
    return roles


def vocab_size_of_legacy_h5(path: Path) -> int:
    """The vocabulary size the seed model was trained with (the output layer's width)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            sizes = []
            root.visititems(lambda _, o: sizes.append(o.shape) if hasattr(o, "shape") else None)
    except OSError as exc:
        raise BundleError(f"{path.name}: not a readable Keras .h5 file ({exc}).") from None
    embeds = [s for s in sizes if len(s) == 2 and s[1] == EMBED and s[0] != EMBED]
    if not embeds:
        raise BundleError(f"{path.name}: no embedding layer of width {EMBED}; this is not the seed caption model.")
    return int(embeds[0][0])


class SeedStepModel(TensorStepModel):
    def __init__(self, model, roles, max_length: int):
        import tensorflow as tf

        self.model = model
        self.vocab_size = int(roles["output"].units)
        self.max_length = max_length
        image_dense = roles["image_dense"]

        feature_dim = int(roles["image_dense"].kernel.shape[0])

        # Batch-agnostic signatures: traced once, whatever the number of rows.
        @tf.function(input_signature=[tf.TensorSpec([None, feature_dim], tf.float32)])
        def encode_image(features):
            return image_dense(features)

        @tf.function(input_signature=[tf.TensorSpec([None, IMAGE_UNITS], tf.float32),
                                      tf.TensorSpec([None, max_length], tf.int32)])
        def predict(image, buffer):
            # The seed graph from the embedding onwards, with the image branch precomputed:
            # the same layers and kernels as model.predict, without its per-call overhead.
            text = roles["embedding"](buffer)
            text = roles["bilstm"](text, training=False)
            image_seq = tf.reshape(image, (-1, 1, IMAGE_UNITS))
            attended = roles["attention"]([text, image_seq], training=False)
            merged = tf.concat([attended, text], axis=-1)
            x = roles["lstm"](merged, training=False)
            x = x + image
            x = roles["dense"](x)
            x = roles["batchnorm"](x, training=False)
            probs = roles["output"](x)
            return tf.math.log(tf.maximum(probs, 1e-30))

        self._encode_image = encode_image
        self._predict = predict
        self._tf = tf

    def begin(self, features):
        tf = self._tf
        image = self._encode_image(tf.convert_to_tensor(features, tf.float32))
        buffer = tf.zeros((len(features), self.max_length), tf.int32)
        return (image,), (buffer,)

    def step(self, context, state, tokens):
        tf = self._tf
        (image,), (buffer,) = context, state
        # Left-padded window: drop the oldest slot, append the newest token (Keras pad_sequences 'pre').
        buffer = tf.concat([buffer[:, 1:], tf.reshape(tf.constant(tokens, tf.int32), (-1, 1))], axis=1)
        log_probs = self._predict(image, buffer).numpy()
        return StepOutput(log_probs, (buffer,))



class SeedFamily(Family):
    name = "seed"

    @classmethod
    def check_config(cls, config):
        for key in ("vocab_size", "max_length", "feature_dim"):
            if not isinstance(config.get(key), int) or config[key] <= 0:
                return f"family_config.{key} must be a positive integer"
        for key, high in (("vocab_size", limits.MAX_VOCABULARY), ("max_length", limits.MAX_LENGTH),
                          ("feature_dim", limits.MAX_FEATURE_DIM)):
            problem = limits.integer_problem("family_config", key, config[key], 1, high)
            if problem:
                return problem.replace("family_config: ", "family_config.", 1)
        return None

    @classmethod
    def weight_spec(cls, config):
        shapes = layer_shapes(config["vocab_size"], config["feature_dim"])
        return WeightSpec(tuple(s for role in shapes.values() for s in role))

    @classmethod
    def build(cls, config):
        return build_seed_model(config["vocab_size"], config["max_length"], config["feature_dim"])

    @classmethod
    def set_role_weights(cls, roles, arrays_by_role):
        for role, arrays in arrays_by_role.items():
            roles[role].set_weights(arrays)

    @classmethod
    def load_step_model(cls, config, weights_path):
        from imgcap_desktop.core.families.seed_weights import read_roles

        model, roles = cls.build(config)
        cls.set_role_weights(roles, read_roles(weights_path))
        return SeedStepModel(model, roles, config["max_length"])


FAMILY = SeedFamily
