#!/usr/bin/env bash
# The everyday photos of benchmarks/everyday_judged.tsv: public-domain and CC0 sample images that
# scikit-image, scikit-learn and matplotlib ship in their wheels (their licences are in those
# packages' documentation: skimage/data/README, sklearn's load_sample_images, matplotlib's
# sample_data/README.txt), and 47 photos of animals, household things, buildings and landscapes
# from Debian's gcompris-qt-data (Wikimedia Commons and GCompris photos; author, licence and
# origin of each in benchmarks/everyday_sources.tsv, from the package's debian/copyright). Only
# package registries are needed (PyPI and Debian); the photos are not shipped.
#   scripts/fetch_everyday_photos.sh DIR     (after make test: PySide6 reads GCompris's .rcc files)
set -euo pipefail
out=${1:?usage: fetch_everyday_photos.sh DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    scikit-image==0.26.0 scikit-learn==1.9.1 matplotlib==3.11.2 -d "$tmp"
mkdir -p "$out"
for wheel in "$tmp"/*.whl; do
    python3 -m zipfile -e "$wheel" "$tmp/x"
done
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$tmp" && apt-get download -q gcompris-qt-data >/dev/null 2>&1) \
    || { echo "apt-get download gcompris-qt-data failed" >&2; exit 1; }
dpkg-deb -x "$tmp"/gcompris-qt-data_*.deb "$tmp/deb"
"${PYTHON:-$here/.venv/bin/python}" - "$tmp/deb/usr/share/gcompris-qt/rcc" "$out" "$here/benchmarks/everyday_sources.tsv" <<'PY'
import csv, sys
from pathlib import Path
from PySide6.QtCore import QFile, QIODevice, QResource
rcc, out, sources = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with open(sources, encoding="utf-8", newline="") as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
for activity in sorted({r["path in gcompris-qt-data"].split("/")[0] for r in rows}):
    if not QResource.registerResource(str(rcc / f"{activity}.rcc")):
        sys.exit(f"gcompris-qt-data has no {activity}.rcc")
for row in rows:
    f = QFile(f":/gcompris/src/activities/{row['path in gcompris-qt-data']}")
    if not f.open(QIODevice.OpenModeFlag.ReadOnly):
        sys.exit(f"not in gcompris-qt-data: {row['path in gcompris-qt-data']}")
    (out / row["photo"]).write_bytes(bytes(f.readAll()))
PY
tail -n +2 "$here/benchmarks/everyday_judged.tsv" | cut -f1 | grep -v '^gcompris-' | while read -r name; do
    found=$(find "$tmp/x/skimage/data" "$tmp/x/sklearn/datasets/images" "$tmp/x/matplotlib/mpl-data/sample_data" \
        -name "$name" -print -quit)
    test -n "$found" || { echo "not in the wheels: $name" >&2; exit 1; }
    cp "$found" "$out/"
done
echo "$(ls "$out" | wc -l) photos in $out"
