# Two commands do all set-up: `make demo` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CACHE := $(CURDIR)/.cache

# Offline switches for the demo and the tests only; the library itself never sets them.
export HF_HUB_OFFLINE := 1
export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CACHE)/ultralytics
export RAY_USAGE_STATS_ENABLED := 0
export RAY_AUTH_MODE := disabled
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export GLOO_SOCKET_IFNAME := lo
export PYTHONUNBUFFERED := 1

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install -c constraints.txt -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) jobs/demo.py --out demo_out --fresh

# pytest exits 5 when it collected no test: that is a failure here.
test: $(STAMP)
	@$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf demo_out .cache .pytest_cache
