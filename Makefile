# Set-up and everyday commands. `make demo` and `make test` work on a fresh Debian 12 machine:
# they install what is missing (Debian packages with apt-get, Python packages into .venv/).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JOBS ?= $(shell nproc)
DEBS := cmake ninja-build gcc clang pkg-config libopenblas-dev libcmocka-dev python3-dev python3-venv \
        libopenmpi-dev openmpi-bin
CMAKE_FLAGS := -G Ninja -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps build build-asan python test test-c test-python demo bench clean

all: build python

# Debian packages: install only the missing ones (needs root or sudo).
deps: $(VENV)/.stamp
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$([ $$(id -u) -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(VENV)/.stamp: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

build: deps
	cmake -S . -B build $(CMAKE_FLAGS)
	cmake --build build -j $(JOBS)

build-asan: deps
	cmake -S . -B build-asan $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON \
	  -DSL_BUILD_FUZZ=ON -DCMAKE_C_COMPILER=clang
	cmake --build build-asan -j $(JOBS)

python: deps
	$(VENV)/bin/pip install -q --no-build-isolation .

test-c: build build-asan
	ctest --test-dir build --output-on-failure -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir build-asan --output-on-failure -j $(JOBS)

test-python: python
	$(PY) -m pytest -q tests/python

test: test-c test-python

demo: python
	$(PY) examples/lenet_demo.py
	$(PY) examples/demo_distributed.py

bench: python
	$(PY) bench/run.py

clean:
	rm -rf build build-asan dist
