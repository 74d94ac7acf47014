"""PySide6 6.12.0 on Python 3.10/3.11 drops a reference to True at every Python-side emit()
and aborts the interpreter after a few hundred; pyproject pins a release without that bug.
This guards the pin: many emits in a fresh interpreter must not crash it."""

import subprocess
import sys

SCRIPT = """
import sys
from PySide6.QtCore import QObject, Signal
class Sender(QObject):
    value = Signal(int)
    flag = Signal(bool)
s = Sender(); got = []
s.value.connect(got.append)
before = sys.getrefcount(True)
for i in range(2000):
    s.value.emit(i)
    s.flag.emit(i % 2 == 0)
assert len(got) == 2000
print(sys.getrefcount(True) - before)
"""


def test_emitting_many_signals_keeps_the_interpreter_alive():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert abs(int(done.stdout.strip().splitlines()[-1])) < 50
