# Two commands do all the set-up on a fresh machine:
#   make run    install, fetch the model, build/update index/ from corpus/, open the chat app
#   make test   install (with test tools and Debian's chromium), fetch the model, run the tests
VENV ?= .venv
PY := $(VENV)/bin/python
RAG := $(VENV)/bin/rag
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: run ask test lint bench tune install browser

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first, from PyTorch's CPU wheel index as PyTorch documents it
	# (a bare 'torch' from PyPI is the multi-GB CUDA build on Linux); where that index cannot
	# be reached, the plain pin from the configured index (see docs/install.md)
	$(PY) -m pip install -q --timeout 20 --retries 1 "torch==$(TORCH_VERSION)" --index-url $(TORCH_CPU_INDEX) \
	  || { echo "note: $(TORCH_CPU_INDEX) cannot be reached: installing torch==$(TORCH_VERSION) from the configured index" >&2; \
	       $(PY) -m pip install -q "torch==$(TORCH_VERSION)"; }
	$(PY) -m pip install -q -e '.[ui,api,eval,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(RAG) model fetch
	$(RAG) serve

# make ask Q="..."  — answer one question from the command line
ask: $(STAMP)
	$(RAG) model fetch
	$(RAG) index --quiet
	$(RAG) ask "$(Q)"

browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || echo "warning: could not install chromium: browser tests will be skipped (and fail in CI)"; }

test: $(STAMP) browser
	$(RAG) model fetch
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check rag ui tests eval

bench: $(STAMP)
	$(PY) eval/bench_retrieval.py

# every fit of what decides an answer, in order, from ../shared/data (each caches its slow
# stages in ~/.cache/rag/bench and resumes where it stopped; each prints its out-of-sample
# table): the judge's decision, then what reads its answers (the lean, the follow-up model)
tune: $(STAMP)
	$(RAG) model fetch
	$(RAG) index --quiet
	$(PY) eval/fit_judge.py --top-k 4 --write-calibration
	$(PY) eval/fit_lean.py --write-calibration
	$(PY) eval/fit_followups.py --write-calibration
