#!/usr/bin/env bash
# The everyday photos of benchmarks/everyday_judged.tsv: public-domain and CC0 sample images that
# scikit-image, scikit-learn and matplotlib ship in their wheels (their licences are in those
# packages' documentation: skimage/data/README, sklearn's load_sample_images, matplotlib's
# sample_data/README.txt). Only a package registry is needed.
#   scripts/fetch_everyday_photos.sh DIR
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
tail -n +2 "$(dirname "$0")/../benchmarks/everyday_judged.tsv" | cut -f1 | while read -r name; do
    found=$(find "$tmp/x/skimage/data" "$tmp/x/sklearn/datasets/images" "$tmp/x/matplotlib/mpl-data/sample_data" \
        -name "$name" -print -quit)
    test -n "$found" || { echo "not in the wheels: $name" >&2; exit 1; }
    cp "$found" "$out/"
done
echo "$(ls "$out" | wc -l) photos in $out"
