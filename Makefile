# The two commands of the README:  make sweep  (install, data, the default study)  and  make test.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
FMNIST  := data/FashionMNIST/raw/t10k-labels-idx1-ubyte
SWEEP   ?= model=simplecnn,resnetsmall sparsity=0.2,0.5,0.8

.PHONY: setup data sweep test lint bench lock

$(STAMP): pyproject.toml requirements/lock.txt scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

$(FMNIST):
	PYTHON=$(PY) bash scripts/get_data.sh data

setup: $(STAMP) $(FMNIST)
data: $(FMNIST)

sweep: setup  ## the default study: 2 models x 3 sparsities on Fashion-MNIST, offline W&B
	$(PY) train.py -m $(SWEEP) $(ARGS)

test: setup  ## the whole test suite (real data, one end-to-end offline sweep) and ruff
	$(PY) -m pytest -q -n auto --dist loadgroup $(ARGS)
	$(VENV)/bin/ruff check .

bench: setup  ## the benchmarks suite (8-13 min on a quiet 2-core machine): writes benchmarks/RESULTS.md
	$(PY) benchmarks/run.py $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .

lock: $(STAMP)  ## re-record the exact versions installed
	{ head -2 requirements/lock.txt; $(PY) -m pip freeze --exclude-editable | grep -iv '^prunelab'; } > requirements/lock.new
	mv requirements/lock.new requirements/lock.txt
