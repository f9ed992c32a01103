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

.PHONY: demo demo-hpo test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install -c constraints.txt -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) jobs/demo.py --out demo_out --fresh

# A very small overnight-style sweep (losses, then tracker), with its plots: about 3 minutes.
HPO := demo_out/hpo
demo-hpo: $(STAMP)
	rm -rf $(HPO)  # a sweep never starts over a folder that holds a study
	$(PY) -m prtreid.cli synth --out $(HPO)/data --seqs 4 --frames 30 --width 640 --height 360 --seed 7
	$(PY) -m prtreid.cli synth --out $(HPO)/val --seqs 1 --frames 40 --width 640 --height 360 --seed 8 --first-index 90
	$(PY) jobs/tune.py losses --space search_spaces/losses.yaml --data $(HPO)/data --config configs/train_cpu_small.yaml \
		--set train.epochs=2 --set model.image_size=[64,32] --set crops.store_height=64 --set crops.max_per_identity=8 \
		--set crops.eval_fraction=0.25 --set sampler.k_instances=2 --set sampler.epoch=identities \
		--out $(HPO)/losses --name demo-losses --num-samples 6 --max-concurrent 2
	$(PY) -m prtreid.cli train --data $(HPO)/data --config $(HPO)/losses/best_config.yaml --out $(HPO)/best_model
	$(PY) jobs/tune.py tracker --space search_spaces/tracker.yaml --sequences $(HPO)/val --model $(HPO)/best_model/model.pt \
		--device cpu --out $(HPO)/tracker --name demo-tracker --num-samples 6 --max-concurrent 2
	@echo "plots: $(HPO)/losses/plots $(HPO)/tracker/plots"

# The peer trackers of benchmarks/tracking.py (boxmot, AGPL-3.0) are an optional extra. boxmot pins
# pandas<3 and pyarrow<24, which would downgrade the project's: it comes without its requirements,
# plus the two its trackers import (lap, from lapx, and rich).
bench: $(STAMP)
	$(PY) -m pip install -c constraints.txt --no-deps boxmot
	$(PY) -m pip install -c constraints.txt lapx rich
	$(PY) benchmarks/tracking.py

# Two pytest workers, a test module each at a time (--dist loadfile: module fixtures are built once); the Ray
# tests leave a core idle while Ray starts processes and polls, which the other worker fills.
# (--dist loadgroup would keep the Ray modules on one worker, but xdist 3.8 cannot group under pytest 9.)
# pytest exits 5 when it collected no test: that is a failure here.
test: $(STAMP)
	@$(PY) -m pytest -q -n 2 --dist loadfile; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf demo_out .cache .pytest_cache
