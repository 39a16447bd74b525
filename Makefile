# Two commands for a fresh Debian machine:  make search  (the main job)  and  make test.
# Both install what they need first (virtualenv, pinned CPU torch, the package).
PYTHON ?= python3
VENV ?= .venv
# The CPU build, pinned and installed before anything that depends on torch: an
# unpinned resolve pulls a multi-GB CUDA build. Override e.g. TORCH_SPEC=torch==2.5.1.
TORCH_VERSION ?= 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
PIP_FLAGS ?= --disable-pip-version-check
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test search bench clean data browser

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -q "$(TORCH_SPEC)"
	$(BIN)/pip install $(PIP_FLAGS) -q -e '.[dev]'
	@$(MAKE) --no-print-directory data
	touch $(STAMP)

# Fashion-MNIST from Debian (dataset-fashion-mnist), installed when running as root.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian package dataset-fashion-mnist"; \
	  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null)) \
	  || echo "warning: could not install dataset-fashion-mnist; set NAS_DATA_DIR to IDX files"; \
	else echo "note: Fashion-MNIST not found; as root: apt-get install dataset-fashion-mnist"; fi

# Debian chromium, for the test that renders report.html headless (skipped without it).
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian package chromium (for the report rendering test)"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q chromium >/dev/null)) \
	  || echo "warning: could not install chromium; the browser test will be skipped"; \
	else echo "note: chromium not found; the report rendering test will be skipped"; fi

test: install browser
	$(BIN)/pytest $(PYTEST_ARGS)

# The main job: default space (mixnet_300m), Fashion-MNIST, run directory under runs/.
# Rerunning continues the same study. Extra flags: make search SEARCH_ARGS="--trials 100"
SEARCH_ARGS ?=
search: install
	$(BIN)/nas search --budget 300M $(SEARCH_ARGS)

bench: install
	$(BIN)/python experiments/bench_cost.py
	$(BIN)/python experiments/bench_supernet.py
	$(BIN)/python experiments/bench_search.py
	$(BIN)/python experiments/bench_latency.py
	$(BIN)/python experiments/bench_export.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
