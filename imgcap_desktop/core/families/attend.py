"""Show-Attend-Tell style decoder: soft attention over the encoder's feature grid.

The LSTM keeps its state between steps, so a step costs the same at word 20 as
at word 1 (the seed topology re-reads its whole 74-token prefix every step).
Training (teacher forcing) and inference call the very same :meth:`AttendDecoder.step`,
so what was trained is exactly what decodes.
"""

from __future__ import annotations

from imgcap_desktop.core import limits
from imgcap_desktop.core.families.base import Family, StepOutput, TensorStepModel, WeightSpec

DEFAULTS = {
    "embed_dim": 256,      # word embedding
    "feature_dim": 1280,   # channels of the encoder grid
    "grid_cells": 49,      # 7×7 at 224 px
    "proj_dim": 512,       # annotation vectors the decoder attends over
    "attention_dim": 256,
    "units": 512,          # LSTM state
    "output_dim": 512,     # deep-output layer before the vocabulary
    "dropout": 0.5,
    "semantic": 0,         # 1: add the encoder's ImageNet class probabilities as a global attention slot
    "classes": 1000,
}


def full_config(config: dict) -> dict:
    merged = dict(DEFAULTS)
    merged.update(config)
    return merged


def members(config: dict) -> int:
    return int(config.get("members", 1))


def state_widths(config: dict) -> dict[str, int]:
    """Shapes of the step state as the runtimes see it (an ensemble concatenates its members')."""
    c, n = full_config(config), members(config)
    return {"annotations": c["proj_dim"] * n, "keys": c["attention_dim"] * n, "h": c["units"] * n, "c": c["units"] * n,
            "slots": c["grid_cells"] + (1 if c["semantic"] else 0)}


def weight_shapes(config: dict) -> list[tuple[int, ...]]:
    return _member_shapes(config) * members(config)


def _member_shapes(config: dict) -> list[tuple[int, ...]]:
    c = full_config(config)
    v, e, f, d, a, h, o = (c["vocab_size"], c["embed_dim"], c["feature_dim"], c["proj_dim"],
                           c["attention_dim"], c["units"], c["output_dim"])
    return [
        (f, d), (d,),              # enc_proj
        (d, a), (a,),              # att_keys
        (h, a), (a,),              # att_query
        (a, 1), (1,),              # att_score
        (d, h), (h,),              # init_h
        (d, h), (h,),              # init_c
        (h, d), (d,),              # gate
        (v, e),                    # embedding
        (e + d, 4 * h), (h, 4 * h), (4 * h,),   # lstm cell
        (h + d + e, o), (o,),      # out_hidden
        (o, v), (v,),              # out_logits
    ] + ([
        (f, c["classes"]), (c["classes"],),   # imagenet_fc (frozen copy of the encoder's classifier)
        (c["classes"], d), (d,),              # semantic
    ] if c["semantic"] else [])


def build_decoder(config: dict):
    """The decoder as a Keras model holding every layer (no functional graph: it is stepped).

    With ``members > 1`` it is an ensemble of independently trained decoders that steps them
    together and averages their word probabilities; its begin/step have the same signature,
    with the members' states concatenated on the last axis, so decoding and the LiteRT
    export treat it like a single decoder.
    """
    import tensorflow as tf

    c = full_config(config)
    n = members(config)
    model = _ensemble_class()(c, n) if n > 1 else _decoder_class()(c)
    # Build every layer with one dummy step so weights exist before loading.
    (annotations, keys), (h, c_state) = model.begin(tf.zeros((1, c["grid_cells"], c["feature_dim"])))
    model.step(annotations, keys, h, c_state, tf.zeros((1,), tf.int32))
    # Layers are built by that step; the models themselves are never called as a whole.
    for part in [model, *getattr(model, "members", [])]:
        part.built = True
    return model


_CLASSES: dict[str, type] = {}


def _decoder_class():
    if "decoder" in _CLASSES:
        return _CLASSES["decoder"]
    import keras
    import tensorflow as tf
    from keras import layers

    class AttendDecoder(keras.Model):
        def __init__(self, c, name="attend_decoder"):
            super().__init__(name=name)
            self.enc_proj = layers.Dense(c["proj_dim"], activation="relu", name="enc_proj")
            self.att_keys = layers.Dense(c["attention_dim"], name="att_keys")
            self.att_query = layers.Dense(c["attention_dim"], name="att_query")
            self.att_score = layers.Dense(1, name="att_score")
            self.init_h = layers.Dense(c["units"], activation="tanh", name="init_h")
            self.init_c = layers.Dense(c["units"], activation="tanh", name="init_c")
            self.gate = layers.Dense(c["proj_dim"], activation="sigmoid", name="gate")
            self.embedding = layers.Embedding(c["vocab_size"], c["embed_dim"], name="embedding")
            self.cell = layers.LSTMCell(c["units"], name="lstm")
            self.out_hidden = layers.Dense(c["output_dim"], activation="tanh", name="out_hidden")
            self.out_logits = layers.Dense(c["vocab_size"], name="out_logits")
            self.feature_dropout = layers.Dropout(c["dropout"] * 0.5)
            self.embed_dropout = layers.Dropout(c["dropout"] * 0.5)
            self.out_dropout = layers.Dropout(c["dropout"])
            self.use_semantic = bool(c["semantic"])
            if self.use_semantic:
                # The encoder's own ImageNet head, frozen: 1000 pretrained concepts (breeds, beaches,
                # bicycles...) that 760 captioned photos could never teach the decoder from scratch.
                self.imagenet_fc = layers.Dense(c["classes"], name="imagenet_fc", trainable=False)
                self.semantic = layers.Dense(c["proj_dim"], activation="relu", name="semantic")

        def begin(self, features, training=False):
            """features (B, cells, F) -> context (annotations, keys) and state (h, c)."""
            annotations = self.enc_proj(self.feature_dropout(features, training=training))
            if self.use_semantic:
                concept = self.semantic(self.concepts(features))
                # One more slot to attend to, beside the grid cells.
                annotations = tf.concat([annotations, concept[:, None, :]], axis=1)
            keys = self.att_keys(annotations)
            mean = tf.reduce_mean(annotations, axis=1)
            return (annotations, keys), (self.init_h(mean), self.init_c(mean))

        def concepts(self, features):
            """The frozen ImageNet head's class probabilities, or None without the semantic slot."""
            if not self.use_semantic:
                return None
            return tf.nn.softmax(self.imagenet_fc(tf.reduce_mean(features, axis=1)))

        def step(self, annotations, keys, h, c_state, tokens, training=False):
            scores = self.att_score(tf.tanh(keys + self.att_query(h)[:, None, :]))[..., 0]
            alpha = tf.nn.softmax(scores, axis=-1)
            context = tf.reduce_sum(alpha[..., None] * annotations, axis=1) * self.gate(h)
            embedded = self.embed_dropout(self.embedding(tokens), training=training)
            h_new, (h_new, c_new) = self.cell(tf.concat([embedded, context], -1), [h, c_state], training=training)
            hidden = self.out_hidden(tf.concat([h_new, context, embedded], -1))
            logits = self.out_logits(self.out_dropout(hidden, training=training))
            return logits, h_new, c_new, alpha

        def call(self, inputs, training=False):
            """Teacher forcing over whole captions: inputs (features, tokens[:, :-1]) -> logits, alphas."""
            features, tokens = inputs
            (annotations, keys), (h, c_state) = self.begin(features, training=training)
            logits, alphas = [], []
            for t in range(tokens.shape[1]):
                step_logits, h, c_state, alpha = self.step(annotations, keys, h, c_state, tokens[:, t], training)
                logits.append(step_logits)
                alphas.append(alpha)
            return tf.stack(logits, axis=1), tf.stack(alphas, axis=1)

    _CLASSES["decoder"] = AttendDecoder
    return AttendDecoder


def _ensemble_class():
    if "ensemble" in _CLASSES:
        return _CLASSES["ensemble"]
    import keras
    import tensorflow as tf

    decoder_class = _decoder_class()

    class AttendEnsemble(keras.Model):
        def __init__(self, c, n):
            super().__init__(name="attend_ensemble")
            self.members = [decoder_class(c, name=f"member_{i}") for i in range(n)]
            self.widths = (c["proj_dim"], c["attention_dim"], c["units"])
            self.out_logits = self.members[0].out_logits  # exposes .units (the vocabulary size)

        def begin(self, features, training=False):
            parts = [m.begin(features, training=training) for m in self.members]
            return ((tf.concat([p[0][0] for p in parts], -1), tf.concat([p[0][1] for p in parts], -1)),
                    (tf.concat([p[1][0] for p in parts], -1), tf.concat([p[1][1] for p in parts], -1)))

        def concepts(self, features):
            return self.members[0].concepts(features)  # every member holds the same frozen head

        def step(self, annotations, keys, h, c_state, tokens, training=False):
            n = len(self.members)
            anns = tf.split(annotations, n, axis=-1)
            ks = tf.split(keys, n, axis=-1)
            hs, cs = tf.split(h, n, axis=-1), tf.split(c_state, n, axis=-1)
            log_probs, new_h, new_c, alphas = [], [], [], []
            for i, m in enumerate(self.members):
                logits, hi, ci, alpha = m.step(anns[i], ks[i], hs[i], cs[i], tokens, training)
                log_probs.append(tf.nn.log_softmax(logits))
                new_h.append(hi)
                new_c.append(ci)
                alphas.append(alpha)
            # The mean of the members' probabilities, as log-probabilities (already normalised).
            mixed = tf.reduce_logsumexp(tf.stack(log_probs), axis=0) - tf.math.log(float(n))
            return mixed, tf.concat(new_h, -1), tf.concat(new_c, -1), tf.reduce_mean(tf.stack(alphas), axis=0)

    _CLASSES["ensemble"] = AttendEnsemble
    return AttendEnsemble


class AttendStepModel(TensorStepModel):
    def __init__(self, decoder, max_length: int, decoder_config: dict):
        import tensorflow as tf

        self.decoder = decoder
        self.vocab_size = int(decoder.out_logits.units)
        self.max_length = max_length
        self._tf = tf

        # Batch-agnostic signatures: each function is traced once, whatever the number of rows.
        # autograph=False: the step has no tensor-dependent Python control flow to convert, and
        # skipping the conversion shortens the trace that every model load pays for.
        c = full_config(decoder_config)
        w = state_widths(decoder_config)
        f32 = tf.float32

        @tf.function(input_signature=[tf.TensorSpec([None, c["grid_cells"], c["feature_dim"]], f32)], autograph=False)
        def begin(features):
            return decoder.begin(features)

        @tf.function(input_signature=[
            tf.TensorSpec([None, w["slots"], w["annotations"]], f32), tf.TensorSpec([None, w["slots"], w["keys"]], f32),
            tf.TensorSpec([None, w["h"]], f32), tf.TensorSpec([None, w["c"]], f32), tf.TensorSpec([None], tf.int32)],
            autograph=False)
        def step(annotations, keys, h, c_state, tokens):
            logits, h, c_state, alpha = decoder.step(annotations, keys, h, c_state, tokens)
            return tf.nn.log_softmax(logits), h, c_state, alpha

        self._begin, self._step = begin, step
        self._concepts = None
        if c["semantic"]:
            @tf.function(input_signature=[tf.TensorSpec([None, c["grid_cells"], c["feature_dim"]], f32)],
                         autograph=False)
            def concepts(features):
                return decoder.concepts(features)

            self._concepts = concepts

    def concepts(self, features):
        if self._concepts is None:
            return None
        return self._concepts(self._tf.convert_to_tensor(features, self._tf.float32)).numpy()

    def begin(self, features):
        tf = self._tf
        return self._begin(tf.convert_to_tensor(features, tf.float32))

    def step(self, context, state, tokens):
        tf = self._tf
        annotations, keys = context
        h, c_state = state
        log_probs, h, c_state, alpha = self._step(annotations, keys, h, c_state,
                                                  tf.convert_to_tensor(tokens, tf.int32))
        return StepOutput(log_probs.numpy(), (h, c_state), alpha.numpy())



class AttendFamily(Family):
    name = "attend"

    @classmethod
    def check_config(cls, config):
        for key in ("vocab_size", "max_length"):
            if not isinstance(config.get(key), int) or config[key] <= 0:
                return f"family_config.{key} must be a positive integer"
        for key in DEFAULTS:
            if key in config and not isinstance(config[key], (int, float)):
                return f"family_config.{key} must be a number"
        if not isinstance(config.get("members", 1), int) or not 1 <= config.get("members", 1) <= limits.MAX_MEMBERS:
            return f"family_config.members must be an integer from 1 to {limits.MAX_MEMBERS}"
        # Bounded before anything is built: a hostile manifest must not be a 14 GB allocation.
        bounds = {"vocab_size": limits.MAX_VOCABULARY, "max_length": limits.MAX_LENGTH,
                  "feature_dim": limits.MAX_FEATURE_DIM, "grid_cells": limits.MAX_GRID_CELLS,
                  "classes": limits.MAX_CLASSES, "embed_dim": limits.MAX_WIDTH, "proj_dim": limits.MAX_WIDTH,
                  "attention_dim": limits.MAX_WIDTH, "units": limits.MAX_WIDTH, "output_dim": limits.MAX_WIDTH}
        for key, high in bounds.items():
            if key in config:
                problem = limits.integer_problem("family_config", key, config[key], 1, high)
                if problem:
                    return problem.replace("family_config: ", "family_config.", 1)
        return None

    @classmethod
    def weight_spec(cls, config):
        return WeightSpec(tuple(weight_shapes(config)))

    @classmethod
    def build(cls, config):
        return build_decoder(config)

    @classmethod
    def load_step_model(cls, config, weights_path):
        decoder = build_decoder(config)
        decoder.load_weights(str(weights_path))
        return AttendStepModel(decoder, config["max_length"], config)


FAMILY = AttendFamily
