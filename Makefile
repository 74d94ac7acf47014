# Everything runs inside .venv, created from nothing by the first target that needs it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The old web app's DenseNet201 as a LiteRT graph without weights (core/densenet_litert.py), packaged as data.
DENSENET_TEMPLATE := imgcap_desktop/core/data/densenet201_litert

.PHONY: run test fuzz bench package selftest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,eval]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/imgcap-desktop

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# The fuzz suite at length: 50,000 mutated inputs per reader and seed (CI runs 2,000).
fuzz: $(STAMP)
	for seed in 1 2 3; do for target in images metadata vocabulary pickle bundle raw xmp; do \
		IMGCAP_FUZZ_CASES=50000 IMGCAP_FUZZ_SEED=$$seed $(BIN)/python -m pytest -q -p no:cacheprovider tests/core/test_fuzz.py -k $$target || exit 1; \
	done; done

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_seed_decoding.py

# The frozen app: a build venv without TensorFlow (.venv-package), the LiteRT export made with the dev venv,
# then PyInstaller. IMGCAP_PACKAGE_MODEL=DIR packages another bundle as the default model.
# The stamp holds the package list, so a changed list rebuilds the venv from nothing (a package dropped
# from the list must not linger in the build).
PACKAGE_DEPS := numpy pillow pi-heif rawpy h5py 'exiv2>=0.19,<0.20' 'pyside6-essentials<6.12' tqdm ai-edge-litert pyinstaller
package: $(STAMP)
	grep -qxF -- "$(PACKAGE_DEPS)" .venv-package/.installed 2>/dev/null || { rm -rf .venv-package && $(PYTHON) -m venv .venv-package && .venv-package/bin/python -m pip install --quiet --upgrade pip && .venv-package/bin/python -m pip install --quiet $(PACKAGE_DEPS) && .venv-package/bin/python -m pip install --quiet --no-deps -e . && echo "$(PACKAGE_DEPS)" > .venv-package/.installed; }
	$(BIN)/imgcap export-litert --if-needed --weights int8 $(or $(IMGCAP_PACKAGE_MODEL),models/default)
	test -f $(DENSENET_TEMPLATE)/densenet201.template.json || $(BIN)/python -m imgcap_desktop.core.densenet_litert $(DENSENET_TEMPLATE)
	IMGCAP_PACKAGE_MODEL=$(IMGCAP_PACKAGE_MODEL) .venv-package/bin/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build build_spec/imgcap-desktop.spec

selftest:
	test -x dist/imgcap-desktop/imgcap-desktop || $(MAKE) package
	env -i PATH=/usr/bin:/bin dist/imgcap-desktop/imgcap-desktop --self-test

clean:
	rm -rf build dist .pytest_cache
