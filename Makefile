# Two commands do all the set-up on a fresh machine:
#   make run    install, fetch the model, build/update index/ from corpus/, open the chat app
#   make test   install (with test tools and Debian's chromium), fetch the model, run the tests
VENV ?= .venv
PY := $(VENV)/bin/python
RAG := $(VENV)/bin/rag
STAMP := $(VENV)/.installed

.PHONY: run ask test lint bench install browser

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first: a bare 'torch' requirement would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[ui,eval,dev]'
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
	    || echo "warning: could not install chromium; browser tests will be skipped"; }

test: $(STAMP) browser
	$(RAG) model fetch
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check rag ui tests eval

bench: $(STAMP)
	$(PY) eval/bench_retrieval.py
