#!/usr/bin/env bash
# Check the packaged app in dist/imgcap-desktop/: build it if needed (make package), run its
# self-test with an empty environment (no Python, no TensorFlow on PATH), print the folder size,
# and time process start -> first window shown under Xvfb.
#
#   scripts/check_frozen.sh            build if missing, then check
#   scripts/check_frozen.sh --rebuild  always rebuild first
#   RUNS=5 scripts/check_frozen.sh     number of timed launches (default 3; the first is a cold start)
#
# Exit status: non-zero if the build, the self-test, or the window check fails, or the folder is
# over SIZE_LIMIT_MIB (default 245: what this build reaches on Linux, 230, plus room for the system
# libraries a build machine may add; the ICU trimming or pi-heif going missing, 24 and 23 MiB, each
# take it over). Needs xvfb-run for the window timing (skipped with a note when it is missing; install
# with: apt-get install -y xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
# libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libxkbcommon-x11-0).
set -euo pipefail
cd "$(dirname "$0")/.."

APP=dist/imgcap-desktop
EXE=$APP/imgcap-desktop
RUNS=${RUNS:-3}
SIZE_LIMIT_MIB=${SIZE_LIMIT_MIB:-245}
LIMIT_BYTES=$((SIZE_LIMIT_MIB * 1024 * 1024))

if [[ "${1:-}" == "--rebuild" || ! -x $EXE ]]; then
    start=$(date +%s)
    make package
    echo "build: $(( $(date +%s) - start )) s"
fi

echo "== self-test (env -i PATH=/usr/bin:/bin)"
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
start=$(date +%s%N)
env -i PATH=/usr/bin:/bin HOME="$home" "$EXE" --self-test
echo "self-test wall time: $(( ($(date +%s%N) - start) / 1000000 )) ms"

echo "== command line (env -i PATH=/usr/bin:/bin)"
CLI=$APP/imgcap
env -i PATH=/usr/bin:/bin HOME="$home" "$CLI" --version
out=$(env -i PATH=/usr/bin:/bin HOME="$home" "$CLI" caption resources/samples/chelsea.jpg resources/samples/coffee-phone.heic \
      --format jsonl --no-progress)
echo "$out" | cut -c1-160
[[ $(echo "$out" | grep -c '"status": "done"') == 2 ]] || { echo "FAIL: the packaged imgcap did not caption both photos" >&2; exit 1; }
# Camera RAW in the packaged app: a DNG made by the tests' writer (the development venv has tifffile).
if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import tifffile" 2>/dev/null; then
    .venv/bin/python -c "import sys; from pathlib import Path; sys.path.insert(0, '.'); \
from tests.support.raw import write_dng; write_dng(Path('$home/raw/IMG_0001.dng'))"
    # and a DNG on which LibRaw segfaults: one failed record, the app going on (its worker process).
    raw=$(env -i PATH=/usr/bin:/bin HOME="$home" "$CLI" caption tests/support/libraw-crash.dng "$home/raw/IMG_0001.dng" \
          --format jsonl --no-progress 2>/dev/null || true)
    echo "$raw" | cut -c1-160
    [[ $(echo "$raw" | grep -c '"status": "done"') == 1 ]] || { echo "FAIL: the packaged imgcap did not caption the DNG" >&2; exit 1; }
    echo "$raw" | grep -q "LibRaw crashed" || { echo "FAIL: the DNG that crashes LibRaw did not fail in a sentence" >&2; exit 1; }
else
    echo "skipped the RAW check: no development venv with tifffile to make a DNG"
fi
# Pillow's codecs in the packaged app (their libraries are stripped at build time): the sample cat in
# every format the development install's Pillow writes, each captioned by the packaged imgcap.
if [[ -x .venv/bin/python ]]; then
    formats=$(.venv/bin/python -c "import sys; from pathlib import Path; from PIL import Image, features
photo = Image.open('resources/samples/chelsea.jpg').convert('RGB')
out = Path(sys.argv[1]); out.mkdir()
kinds = [('png', 'PNG'), ('gif', 'GIF'), ('webp', 'WEBP'), ('tif', 'TIFF'), ('bmp', 'BMP'), ('jp2', 'JPEG2000')]
kinds += [('avif', 'AVIF')] if features.check('avif') else []
for suffix, fmt in kinds:
    photo.save(out / f'cat.{suffix}', fmt)
print(len(kinds))" "$home/formats")
    got=$(env -i PATH=/usr/bin:/bin HOME="$home" "$CLI" caption "$home/formats" --format jsonl --no-progress \
          | grep -c '"status": "done"' || true)
    echo "photo formats: $got of $formats captioned ($(ls "$home/formats" | sed 's/cat\.//' | tr '\n' ' '))"
    [[ $got == "$formats" ]] || { echo "FAIL: the packaged imgcap did not caption every format" >&2; exit 1; }
fi
# Writing into photos (Exiv2 in the packaged app): a copy of a sample, read back by exiftool when it is there.
cp resources/samples/chelsea.jpg "$home/written.jpg"
env -i PATH=/usr/bin:/bin HOME="$home" "$CLI" caption "$home/written.jpg" --write metadata --format jsonl --no-progress \
    | grep -q '"target": "metadata", "path": [^}]*"result": "written"' || { echo "FAIL: the packaged imgcap did not write into the photo" >&2; exit 1; }
if command -v exiftool >/dev/null; then
    echo "written into the photo (exiftool): $(exiftool -s3 -XMP-dc:Description -IPTC:Keywords "$home/written.jpg" | tr '\n' '|')"
fi
info=$(env -i PATH=/usr/bin:/bin HOME="$home" "$CLI" info)
echo "$info" | grep -E "^(name|checksums):"
if env -i PATH=/usr/bin:/bin HOME="$home" "$CLI" train --data x --out y 2>"$home/train.err"; then
    echo "FAIL: imgcap train ran in a build without TensorFlow" >&2; exit 1
fi
grep -q "needs the development install" "$home/train.err" || { echo "FAIL: imgcap train did not say what it needs" >&2; exit 1; }
cat "$home/train.err"

echo "== the old web app's model (a small seed model made by the development venv)"
if [[ -x .venv/bin/python ]]; then
    .venv/bin/python scripts/make_seed_check.py "$home/seed" >/dev/null 2>"$home/seed-make.err" \
        || { cat "$home/seed-make.err" >&2; exit 1; }
    seedargs=(--seed-model "$home/seed/seed_models" --encoder-weights "$home/seed/densenet201_notop.weights.h5")
    start=$(date +%s%N)
    env -i PATH=/usr/bin:/bin HOME="$home" "$EXE" --self-test --samples "$home/seed/photos" "${seedargs[@]}" | grep "seed"
    echo "seed self-test wall time (DenseNet201 filled on first use): $(( ($(date +%s%N) - start) / 1000000 )) ms"
    env -i PATH=/usr/bin:/bin HOME="$home" "$CLI" import-seed "$home/seed/seed_models" --out "$home/seed/bundle" \
        --encoder-weights "$home/seed/densenet201_notop.weights.h5"
    got=$(env -i PATH=/usr/bin:/bin HOME="$home" "$CLI" caption "$home"/seed/photos/*.jpg --model "$home/seed/bundle" \
          --format text --no-progress | sed 's|^.*/||')
    if [[ "$got" != "$(cat "$home/seed/expected.tsv")" ]]; then
        echo "FAIL: the packaged app's seed captions differ from the development install's:" >&2
        diff <(echo "$got") "$home/seed/expected.tsv" >&2 || true
        exit 1
    fi
    echo "seed captions: the same as the development install's for all $(echo "$got" | wc -l) photos"
else
    echo "skipped the seed check: no development venv to make a seed model"
fi

echo "== size"
du -sh "$APP"
bytes=$(du -sb "$APP" | cut -f1)
echo "$APP: $((bytes / 1024 / 1024)) MiB (limit ${SIZE_LIMIT_MIB} MiB; the issue's goal of 150 MiB is not met, see README)"
echo "largest parts (MiB):"
# (sed, not head: head leaves sort writing into a closed pipe, and pipefail turns that into a failure)
{ du -sml "$APP"/_internal/* "$APP"/_internal/PySide6/Qt/lib/libicudata* 2>/dev/null || true; } \
    | sort -rn | sed -n "1,12s|$APP/_internal/||p"
# What each size step saved, measured on this build against the wheels as installed.
echo "size steps:"
"$(command -v python3 || echo .venv/bin/python)" scripts/size_report.py "$APP" .venv-package | sed 's/^/  /'
# The download: the folder as one archive (what a release would publish).
echo "as a .tar.gz (gzip -6): $(( $(tar -C dist -cf - imgcap-desktop | gzip -6 | wc -c) / 1024 / 1024 )) MiB"
if (( bytes > LIMIT_BYTES )); then
    echo "FAIL: the folder is over ${SIZE_LIMIT_MIB} MiB" >&2
    exit 1
fi
# pillow_heif.libs: pillow-heif's x265 encoder (the app reads HEIC through pi-heif).
for forbidden in tensorflow keras tensorboard torch resources/screenshots pillow_heif.libs; do
    if [[ -e $APP/_internal/$forbidden ]]; then
        echo "FAIL: $forbidden was packaged" >&2
        exit 1
    fi
done

echo "== launch to first window and to model ready (Xvfb, IMGCAP_STARTUP_TIMING)"
if ! command -v xvfb-run >/dev/null; then
    echo "skipped: xvfb-run is not installed"
    exit 0
fi
status=0
for run in $(seq 1 "$RUNS"); do
    log=$(mktemp)
    # The GUI prints "window shown X s after process start" on its first show; the app is then closed.
    xvfb-run -a -s "-screen 0 1280x1024x24" bash -c '
        env -i PATH=/usr/bin:/bin HOME="$1" DISPLAY="$DISPLAY" XAUTHORITY="${XAUTHORITY:-}" \
            QT_QPA_PLATFORM=xcb IMGCAP_STARTUP_TIMING=1 "$2" 2>"$3" &
        pid=$!
        for _ in $(seq 1 300); do
            grep -q "model ready" "$3" 2>/dev/null && break
            kill -0 $pid 2>/dev/null || break
            sleep 0.05
        done
        kill $pid 2>/dev/null || true
        wait $pid 2>/dev/null || true
    ' _ "$home" "$EXE" "$log" || true
    line=$(grep -m1 "window shown" "$log" || true)
    ready=$(grep -m1 "model ready" "$log" || true)
    if [[ -n $line ]]; then
        echo "run $run: ${line#imgcap-desktop: }; ${ready#imgcap-desktop: }"
    else
        echo "run $run: no window within 15 s; the app said:" >&2
        tail -20 "$log" >&2
        status=1
    fi
    rm -f "$log"
done
exit $status
