# Two commands do everything: `make run` (install + start the dashboard) and `make test` (install + all tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test lint install install-dev browser-deps clean

## csr_core is installed editable (pyproject.toml; console script `csr-lab`) over the pinned requirements.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt requirements-test.txt requirements-train.txt requirements-ray.txt requirements-browser.txt
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Debian chromium drives the real-browser tests (Playwright never downloads a browser here); a CJK font makes the
## code-switched Chinese captions in their screenshots readable (DejaVu already covers Arabic).
browser-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="chromium fonts-noto-color-emoji"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-wqy-zenhei"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing: sudo apt-get install$$missing (browser tests are skipped without chromium)"; fi; fi

run: install
	TOKENIZERS_PARALLELISM=false $(PY) -m streamlit run dashboard.py --server.address 127.0.0.1 --server.port $(PORT) --browser.gatherUsageStats false

lint: install-dev
	$(PY) -m ruff check csr_core app_pages dashboard.py tests benchmarks
	$(PY) -m mypy

test: install-dev browser-deps lint
	TOKENIZERS_PARALLELISM=false $(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
