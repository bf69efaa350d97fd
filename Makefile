# The README's two commands: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DATA := data/demo-nuscenes
DEMO_CFG := configs/flatformer/flatformer_demo_synthetic.py
DEMO_WORK := work_dirs/flatformer_demo
PYTEST_ARGS ?=

.PHONY: demo test bench install sysdeps clean-venv demo-data camera-data

# Debian's libusb-1.0-0 is needed by open3d; installed when we are root and it is missing.
sysdeps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing libusb-1.0-0 (needed by open3d)"; \
	    (apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q libusb-1.0-0 >/dev/null)) \
	      || echo "warning: could not install libusb-1.0-0; open3d rendering will be unavailable"; \
	  else echo "warning: libusb-1.0-0 missing and not root; open3d rendering will be unavailable"; fi; \
	fi

$(STAMP): pyproject.toml setup.py
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	# the CPU build of torch first (a plain `torch` requirement would pull a multi-GB CUDA build)
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: sysdeps $(STAMP)

# the stamp names the world's size: a demo tree of another size (e.g. from an older version) is generated anew
DEMO_WORLD := --train-scenes 20 --val-scenes 4
DEMO_WORLD_STAMP := $(DEMO_DATA)/.demo-world-20-4

$(DEMO_WORLD_STAMP): | install
	$(VPY) tools/create_data.py synthetic-nuscenes --out $(DEMO_DATA) $(DEMO_WORLD) --overwrite
	@touch $@

demo-data: $(DEMO_WORLD_STAMP)
	$(VPY) tools/create_data.py nuscenes --root $(DEMO_DATA) --version v1.0-trainval
	# GT database for copy-paste augmentation (loading settings must match the demo train pipeline)
	$(VPY) tools/create_data.py gt-database --root $(DEMO_DATA) --split synthetic_train --sweeps-num 4 --load-dim 5 --use-dim 0 1 2 3

# More training scenes for the camera detectors' *_180scenes_synthetic.py configs (configs/dfa3d/README.md): a
# second world of 160 train scenes (seed 1, no val split, no sweeps): 1.1 GB, about 9 min on one core.
CAMERA_DATA := data/camera-world
CAMERA_WORLD := --train-scenes 160 --val-scenes 0 --seed 1 --sweeps 0
CAMERA_WORLD_STAMP := $(CAMERA_DATA)/.camera-world-160-s1

$(CAMERA_WORLD_STAMP): | install
	$(VPY) tools/create_data.py synthetic-nuscenes --out $(CAMERA_DATA) $(CAMERA_WORLD) --overwrite
	@touch $@

camera-data: demo-data $(CAMERA_WORLD_STAMP)
	$(VPY) tools/create_data.py nuscenes --root $(CAMERA_DATA) --version v1.0-trainval

demo: install demo-data
	# no validation inside training: tools/test.py evaluates the final checkpoint right after
	$(VPY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_WORK) --no-validate
	$(VPY) tools/test.py $(DEMO_CFG) $(DEMO_WORK) --work-dir $(DEMO_WORK)
	$(VPY) tools/visualize.py --dataset-config $(DEMO_CFG) --checkpoint $(DEMO_WORK) --index 0 --out-dir $(DEMO_WORK)/renders

test: install
	$(VPY) -m pytest -q $(PYTEST_ARGS)

bench: install
	$(VPY) tools/benchmark.py all

clean-venv:
	rm -rf $(VENV)
