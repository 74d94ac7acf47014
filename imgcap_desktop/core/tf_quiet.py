"""Import TensorFlow without its start-up chatter on the terminal.

On a machine without CUDA every launch printed "failed call to cuInit ... UNKNOWN ERROR (303)"
and half a dozen oneDNN / CPU-feature notes. They are written by C++ before TensorFlow's log
level applies (``TF_CPP_MIN_LOG_LEVEL`` does not reach them), so the only way to keep them off
a user's terminal is to hold file descriptor 2 while TensorFlow starts, then pass on every
line that is not one of those known notes. Python errors are exceptions, not stderr text, so
nothing that matters is lost.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading

NOISE = re.compile(
    r"cuInit|cudart_stub\.cc|cuda_platform\.cc|cuda_executor|cpu_feature_guard\.cc|"
    r"oneDNN custom operations are on|^To enable the following instructions|"
    r"All log messages before absl::InitializeLog|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|TF-TRT Warning"
)

_lock = threading.Lock()


def import_tensorflow():
    """``import tensorflow`` (and its first device query, where cuInit runs), minus the noise."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _lock:
        if "tensorflow" in sys.modules:
            return sys.modules["tensorflow"]
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            saved = None   # no usable stderr (a windowed app): nothing to keep quiet
        if saved is None:
            import tensorflow as tf

            return tf
        with tempfile.TemporaryFile(mode="w+b") as held:
            os.dup2(held.fileno(), 2)
            try:
                import tensorflow as tf

                tf.config.list_physical_devices("GPU")
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                text = held.read().decode("utf-8", "replace")
        kept = [line for line in text.splitlines(keepends=True) if line.strip() and not NOISE.search(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
        return tf
