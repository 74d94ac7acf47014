"""The seed decoder in NumPy, for installations without TensorFlow (the packaged app).

The same arithmetic as the Keras graph in :mod:`seed` (tests compare the two): Keras' LSTM
gates in i, f, c, o order with tanh and a sigmoid recurrent activation; the Bidirectional
layer's backward half reads the prefix from its end and its outputs are put back in reading
order; the Attention layer attends from every token to one image vector, so its output is
that vector (a softmax over one score is 1); BatchNormalization with Keras' default epsilon.

Each step re-reads the whole left-padded window of ``max_length`` tokens, as the seed did.
Every row of a step holds the same number of tokens (decoding keeps its rows in step), so the
forward LSTM's run over the padding is the same for all rows and all steps: it is computed
once, and each step runs the forward direction over the real tokens only.
"""

from __future__ import annotations

import numpy as np

from imgcap_desktop.core.families.base import StepModel, StepOutput

BATCHNORM_EPSILON = 1e-3  # keras.layers.BatchNormalization's default, which the seed graph uses


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow warnings for large |x|


def _lstm(inputs_w: np.ndarray, recurrent: np.ndarray, h: np.ndarray, c: np.ndarray):
    """Run an LSTM over precomputed input projections ``inputs_w`` (rows, steps, 4u); returns all h and the last (h, c)."""
    units = recurrent.shape[0]
    outputs = np.empty(inputs_w.shape[:2] + (units,), dtype=np.float32)
    for t in range(inputs_w.shape[1]):
        z = inputs_w[:, t] + h @ recurrent
        i, f = _sigmoid(z[:, :units]), _sigmoid(z[:, units:2 * units])
        c = f * c + i * np.tanh(z[:, 2 * units:3 * units])
        h = _sigmoid(z[:, 3 * units:]) * np.tanh(c)
        outputs[:, t] = h
    return outputs, h, c


class NumpySeedStepModel(StepModel):
    def __init__(self, roles: dict[str, list[np.ndarray]], max_length: int):
        f32 = {role: [np.asarray(a, dtype=np.float32) for a in arrays] for role, arrays in roles.items()}
        (self._embedding,) = f32["embedding"]
        self._image_w, self._image_b = f32["image_dense"]
        self._fw = f32["bilstm"][:3]
        self._bw = f32["bilstm"][3:]
        self._lstm_w = f32["lstm"]
        self._dense_w, self._dense_b = f32["dense"]
        gamma, beta, mean, var = f32["batchnorm"]
        self._bn_scale = gamma / np.sqrt(var + BATCHNORM_EPSILON)
        self._bn_shift = beta - mean * self._bn_scale
        self._out_w, self._out_b = f32["output"]
        self.vocab_size = int(self._out_w.shape[1])
        self.max_length = int(max_length)
        self._padding_states = self._forward_over_padding()

    def _forward_over_padding(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(h after k pads, c after k pads, the k outputs) for k = 0 .. max_length."""
        kernel, recurrent, bias = self._fw
        units = recurrent.shape[0]
        pad = (self._embedding[0] @ kernel + bias)[None, None, :]
        h = c = np.zeros((1, units), np.float32)
        outputs: list[np.ndarray] = []
        states = [(h[0], c[0], np.zeros((0, units), np.float32))]
        for _ in range(self.max_length):
            _, h, c = _lstm(pad, recurrent, h, c)
            outputs.append(h[0])
            states.append((h[0], c[0], np.stack(outputs)))
        return states

    def _forward(self, text: np.ndarray, count: np.ndarray) -> np.ndarray:
        """The forward LSTM's outputs over each row's window, the padding part taken from the cache."""
        kernel, recurrent, bias = self._fw
        out = np.empty(text.shape[:2] + (recurrent.shape[0],), np.float32)
        for real in np.unique(count):  # one value in practice: decoding keeps its rows in step
            rows = np.flatnonzero(count == real)
            pads = self.max_length - int(real)
            h0, c0, pad_out = self._padding_states[pads]
            out[rows, :pads] = pad_out
            out[rows, pads:], _, _ = _lstm(text[rows, pads:] @ kernel + bias, recurrent,
                                           np.repeat(h0[None], len(rows), 0), np.repeat(c0[None], len(rows), 0))
        return out

    def begin(self, features):
        image = np.maximum(np.asarray(features, np.float32) @ self._image_w + self._image_b, 0.0)
        return (image,), (np.zeros((len(image), self.max_length), np.int64), np.zeros(len(image), np.int64))

    def step(self, context, state, tokens):
        (image,), (window, count) = context, state
        rows = len(image)
        # Left-padded window: drop the oldest slot, append the newest token (Keras pad_sequences 'pre').
        window = np.concatenate([window[:, 1:], np.asarray(tokens, np.int64).reshape(-1, 1)], axis=1)
        count = np.minimum(count + 1, self.max_length)
        text = self._embedding[window]                                    # (rows, L, 256)
        forward = self._forward(text, count)
        kernel, recurrent, bias = self._bw
        zeros = np.zeros((rows, recurrent.shape[0]), np.float32)
        backward, _, _ = _lstm((text @ kernel + bias)[:, ::-1], recurrent, zeros, zeros)
        sequence = np.concatenate([forward, backward[:, ::-1]], axis=-1)   # (rows, L, 512)

        # The LSTM reads [image, sequence] at every position: the image's share of its input
        # projection is the same at each one.
        kernel, recurrent, bias = self._lstm_w
        width = image.shape[1]
        projected = sequence @ kernel[width:] + (image @ kernel[:width] + bias)[:, None, :]
        zeros = np.zeros((rows, recurrent.shape[0]), np.float32)
        _, h, _ = _lstm(projected, recurrent, zeros, zeros)
        x = np.maximum((h + image) @ self._dense_w + self._dense_b, 0.0)
        x = x * self._bn_scale + self._bn_shift
        logits = x @ self._out_w + self._out_b
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        # The Keras graph takes log(max(softmax, 1e-30)): the same floor here.
        return StepOutput(np.maximum(log_probs, np.log(1e-30)).astype(np.float32), (window, count))

    def select(self, arrays, rows):
        idx = np.asarray(rows, dtype=np.intp)
        return tuple(np.take(a, idx, axis=0) for a in arrays)
