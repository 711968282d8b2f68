# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test wheel-check bench bench-quick gpu-bundle clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when pyproject.toml changes (idempotent second call).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Simulate a 20,000-spectrum survey, train, run the catalogue, report, score against truth.
demo: $(STAMP)
	$(BIN)/jaxvac demo --out demo --n 20000

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

# Build the wheel, install it into a fresh virtualenv outside the checkout and use it from a
# temporary folder: simulate, info, train (a copied config with base = "demo.toml"), run.
wheel-check:
	PYTHON=$(PYTHON) .ci/wheel-check

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

bench-quick: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit 1; done

# What bench/gpu.sh needs on a lent GPU machine that its image lacks (see bench/gpu.sh).
WHEEL_PLATFORMS := $(foreach p,manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1,--platform $(p)_x86_64)
gpu-bundle: $(STAMP)
	rm -rf .whl .lamost && mkdir -p .whl
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(WHEEL_PLATFORMS) --platform any -d .whl \
		$$($(BIN)/python -m pip list --format=freeze 2>/dev/null | grep -i -E '^(astropy|astropy-iers-data|pyerfa|fitsio|speclite|zlib-ng|deflate)==')
	rm -rf build  # a stale build/lib would leak moved modules into the wheel
	$(BIN)/python -m pip wheel --quiet --no-deps -w .whl .  # jaxvac itself: jaxvac.kernels exists only installed
	cp -r ../shared/lamost .lamost
	@du -sh .whl .lamost

clean:
	rm -rf $(VENV) build *.egg-info
