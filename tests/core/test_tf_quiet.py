"""TensorFlow's start-up notes stay off the terminal; anything else written to stderr still gets through."""

import subprocess
import sys


def test_tensorflow_starts_without_the_cuinit_and_cpu_notes():
    script = (
        "import os, sys\n"
        "from imgcap_desktop.core.tf_quiet import import_tensorflow\n"
        "tf = import_tensorflow()\n"
        "print(tf.constant(2).numpy() * 21)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    for note in ("cuInit", "cpu_feature_guard", "oneDNN custom operations", "absl::InitializeLog"):
        assert note not in done.stderr, done.stderr


def test_other_stderr_lines_are_passed_on():
    from imgcap_desktop.core.tf_quiet import NOISE

    assert NOISE.search("E0000 00:00:1 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)")
    assert not NOISE.search("Traceback (most recent call last):")
    assert not NOISE.search("W0000 resource_variable_ops.cc] out of memory trying to allocate 14 GB")
