"""A small seed model for the packaged app's check, with what the development install says about it.

    .venv/bin/python scripts/make_seed_check.py OUT

Writes ``OUT/seed_models`` (image_caption.h5 + tokenizer.pkl: the real seed topology, its head
trained briefly by tests/support/seed.py to say distinct captions), ``OUT/densenet201_notop.weights.h5``
(random DenseNet201 weights, as the real file is not ours to ship), ``OUT/photos`` and
``OUT/expected.tsv``: each photo's caption on the Keras runtime. ``scripts/check_frozen.sh``
compares the packaged app's captions of the same photos with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from imgcap_desktop.core.captioner import Captioner
    from tests.support.seed import make_densenet_weights, make_photos, make_trained_seed_folder, seed_photo_features

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    weights, densenet = make_densenet_weights(out / "densenet201_notop.weights.h5", keep_model=True)
    photos = make_photos(out / "photos", count=4)
    trained = make_trained_seed_folder(out / "seed_models",
                                       photo_features=seed_photo_features(weights, photos, model=densenet))
    captioner = Captioner.load(trained.folder, encoder_weights=weights, runtime="keras")
    lines = [f"{r.path.name}\t{r.caption.text}" for r in captioner.caption_paths(photos)]
    (out / "expected.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
