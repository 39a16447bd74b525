# Two commands for a fresh Debian machine:  make search  (the main job)  and  make test.
# Both install what they need first (virtualenv, pinned CPU torch, the package).
PYTHON ?= python3
VENV ?= .venv
# torch and torchvision, pinned as a pair and installed before anything that depends on
# torch (an unpinned resolve can pull another build than the one tested). The pair is the
# standard build (it runs on the CPU): torchvision's operators do not load with the CPU-only
# torch 2.13.0, and the data pipeline (transforms v2) and ultralytics need them.
# Override e.g. TORCH_SPEC="torch==2.9.1 torchvision==0.24.1" (aarch64).
TORCH_VERSION ?= 2.14.1
TORCHVISION_VERSION ?= 0.29.1
TORCH_SPEC ?= torch==$(TORCH_VERSION) torchvision==$(TORCHVISION_VERSION)
PIP_FLAGS ?= --disable-pip-version-check
PYTEST_ARGS ?=
# The suite runs in TEST_WORKERS pytest-xdist processes, a test file to each (its module
# fixtures built once), every one with one intra-op thread: two torch processes of two
# threads each on two cores run slower than one at a time. TEST_WORKERS=0: one process,
# with torch's own thread count.
TEST_WORKERS ?= 2
TEST_ENV := $(if $(filter-out 0,$(TEST_WORKERS)),OMP_NUM_THREADS=1)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint test search bench clean data opengl browser postgres

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -q $(TORCH_SPEC)
	$(BIN)/pip install $(PIP_FLAGS) -q -e '.[dev]'
	@$(MAKE) --no-print-directory data opengl
	touch $(STAMP)

# $(call apt_ensure,CHECK,PACKAGE,WHAT IT IS FOR,WHAT HAPPENS WITHOUT IT): run CHECK; if it
# fails, install the Debian PACKAGE when running as root, else print a note.
define apt_ensure
	@if $(1) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian package $(2) ($(3))"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q $(2) >/dev/null)) \
	  || echo "warning: could not install $(2): $(4)"; \
	else echo "note: $(2) not found: $(4)"; fi
endef

# Fashion-MNIST from Debian, the default data.
data:
	$(call apt_ensure,test -d /usr/share/datasets/fashion-mnist,dataset-fashion-mnist,the default data,set NAS_DATA_DIR to Fashion-MNIST IDX files)

# Debian libgl1: OpenCV (ultralytics', for nas export --yolo and its test) loads libGL.so.1.
opengl:
	$(call apt_ensure,ls /usr/lib/*/libGL.so.1,libgl1,OpenCV for nas export --yolo,importing ultralytics fails)

# Debian chromium, for the test that renders report.html headless.
browser:
	$(call apt_ensure,command -v chromium,chromium,for the report rendering test,that test is skipped)

# Debian postgresql, for the multi-worker search test (a throwaway server).
postgres:
	$(call apt_ensure,ls /usr/lib/postgresql/*/bin/initdb,postgresql,for the multi-worker test,that test is skipped)

# Architecture rules (import-linter contracts in pyproject.toml), style (ruff) and dead code
# (vulture over nas/, allow-list in vulture_allowlist.py) first: they take seconds, and a
# broken layer is worth knowing before the suite runs.
lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check nas tests experiments vulture_allowlist.py
	$(BIN)/vulture

test: install browser postgres lint
	$(TEST_ENV) $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The main job: default space (mixnet_300m), Fashion-MNIST, run directory under runs/.
# Rerunning continues the same study. Extra flags: make search SEARCH_ARGS="--trials 100"
SEARCH_ARGS ?=
search: install
	$(BIN)/nas search --budget 300M $(SEARCH_ARGS)

# timm's mixnet_s is the export bench's baseline (torchvision, which it imports, is
# installed with torch).
bench: install
	$(BIN)/python experiments/bench/cost.py
	$(BIN)/python experiments/bench/supernet.py
	$(BIN)/python experiments/bench/search.py
	$(BIN)/python experiments/bench/latency.py
	$(BIN)/pip install $(PIP_FLAGS) -q "timm>=1.0"
	$(BIN)/python experiments/bench/export.py
	$(BIN)/python experiments/bench/workers.py
	$(BIN)/python experiments/bench/importtime.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
