# One-command entry points. The environment lives in .venv/ at the repository root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= work/demo

.PHONY: install demo demo-siamrpn demo-siamattn demo-roam test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Train GRM-tiny on the embedded synthetic dataset, evaluate it against a static box and the
# untrained model, print the table and write success/precision plots into $(WORKDIR).
demo: install
	$(PY) demo.py --workdir $(WORKDIR)

# The same for SiamRPN++-tiny (configs/siamrpn.py:tiny).
demo-siamrpn: install
	$(PY) demo.py --config configs/siamrpn.py:tiny --workdir work/demo_siamrpn

# The same for SiamAttn-tiny (configs/siamattn.py:tiny; learns boxes and masks, docs/siamattn.md).
demo-siamattn: install
	$(PY) demo.py --config configs/siamattn.py:tiny --workdir work/demo_siamattn

# The same for ROAM-tiny (configs/roam.py:tiny; meta-trains the learned optimizer, docs/roam.md).
demo-roam: install
	$(PY) demo.py --config configs/roam.py:tiny --workdir work/demo_roam

test: install
	$(PY) -m pytest -q -ra -n 2 --dist loadfile

bench: install
	$(PY) benchmarks/grm_latency.py
	$(PY) benchmarks/siam_latency.py
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) work
