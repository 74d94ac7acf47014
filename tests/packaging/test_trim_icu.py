"""The packaged app's trimmed ICU data (build_spec/trim_icu.py): built from the development
install's own libicudata with ICU's tools, then loaded by a real Qt in a subprocess. Collation
(every locale's rules are kept) and locale-aware case mapping read ICU's data and must come out as
with the whole library; number and date formats and time zones, which Qt takes from its own
tables, are compared too, as a guard that nothing Qt does at start-up depends on what was cut."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "build_spec"))
import trim_icu  # noqa: E402

# What the app (and Qt's own file dialog) asks of ICU, printed as JSON; plus which libicudata the
# process really loaded and whether a legacy-encoding decoder exists (the trimmed data has none).
PROBE = r"""
import json, sys
from PySide6.QtCore import QCollator, QDateTime, QLocale, QStringDecoder, QTimeZone
from PySide6.QtWidgets import QApplication
app = QApplication([])
out = {}
names = ["zebra", "Äpfel", "apple", "ångström", "img10", "img9", "Émile", "ıi", "中文", "Zürich", "ZZ"]
for loc in ("en_US", "de_DE", "sv_SE", "tr_TR", "fr_FR", "ja_JP"):
    collator = QCollator(QLocale(loc))
    collator.setNumericMode(True)
    out[loc] = [sorted(names, key=collator.sortKey), QLocale(loc).toUpper("istanbul straße"),
                QLocale(loc).toString(1234567.25, "f", 2), QLocale(loc).dateFormat()]
berlin = QTimeZone(b"Europe/Berlin")
out["zone"] = [berlin.isValid(), berlin.offsetFromUtc(QDateTime.fromSecsSinceEpoch(1750000000))]
loaded = [line.split()[-1] for line in open("/proc/self/maps") if "libicudata" in line]
print(json.dumps({"results": out, "icudata": sorted(set(loaded)),
                  "shift_jis": QStringDecoder("Shift-JIS").isValid()}))
"""


def test_locales_other_than_english_and_legacy_encodings_go_collation_stays():
    keep = trim_icu.keep_item
    assert keep("root.res") and keep("en.res") and keep("en_GB.res") and keep("pool.res")
    assert keep("coll/sv.res") and keep("coll/ucadata.icu") and keep("zoneinfo64.res") and keep("nfkc.nrm")
    assert keep("brkitr/line.brk") and keep("unit/en.res") and keep("supplementalData.res")
    assert keep("res_index.res") and keep("zone/res_index.res")  # the lists of locales, not locales
    assert not keep("de.res") and not keep("zone/fr_CA.res") and not keep("curr/ja.res")
    assert not keep("ibm-943_P15A-2003.cnv") and not keep("brkitr/cjdict.dict") and not keep("translit/root.res")
    assert not keep("rbnf/de.res") and not keep("lang/sv.res")


def _icudata() -> Path | None:
    try:
        import PySide6
    except ImportError:
        return None
    found = sorted((Path(PySide6.__file__).parent / "Qt" / "lib").glob("libicudata.so.*"))
    return found[0] if found else None


def _probe(library_dir: Path | None) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    if library_dir is not None:
        # searched before Qt's RUNPATH ($ORIGIN), so Qt Core links the trimmed library
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(library_dir), env.get("LD_LIBRARY_PATH")]))
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or _icudata() is None, reason="Qt links ICU on Linux only")
@pytest.mark.skipif(bool(trim_icu.missing_tools()), reason=f"needs {trim_icu.missing_tools()} (icu-devtools)")
def test_qt_behaves_the_same_on_the_trimmed_icu_data(tmp_path):
    whole = _icudata()
    before, after = trim_icu.trim(whole, tmp_path / whole.name)
    assert after < before / 3  # 30.6 MiB -> 6.4 with PySide6 6.11's ICU 73

    full = _probe(None)
    trimmed = _probe(tmp_path)
    assert full["icudata"] == [str(whole.resolve())]
    assert trimmed["icudata"] == [str((tmp_path / whole.name).resolve())]  # really the trimmed one
    assert trimmed["results"] == full["results"]
    assert full["shift_jis"] and not trimmed["shift_jis"]  # the one thing given up: legacy encodings


def test_a_library_without_icu_data_is_refused_in_a_sentence(tmp_path):
    if trim_icu.missing_tools():
        pytest.skip(f"needs {trim_icu.missing_tools()}")
    fake = tmp_path / "libicudata.so.73"
    fake.write_bytes(b"\x7fELF not really a library")
    with pytest.raises(trim_icu.TrimError, match="libicudata.so.73") as err:
        trim_icu.trim(fake, tmp_path / "out.so")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out.so").exists()
