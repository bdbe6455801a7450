# Two commands do all set-up on a fresh machine: `make demo` and `make test`. Both create the virtual
# environment if it is missing, install tfscissor into it, and need no root.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo test test-all bench bench-demo bench-trim bench-crop bench-shrink bench-qat bench-prune \
  bench-devices lint system-deps clean

$(INSTALLED): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/tfscissor run recipes/demo.yaml

# The fast set: every test but those marked slow (over 5 s each on 2 cores), about 4 minutes on 2 cores.
test: $(INSTALLED)
	$(BIN)/python -m pytest -q -m "not slow"

# The whole suite, slow tests included (about 26 minutes on 2 cores). CI runs this one (.ci/run).
test-all: $(INSTALLED)
	$(BIN)/python -m pytest -q

# Every benchmark below, in this order, into a fresh bench/RESULTS.md (the old one goes to
# bench/runs/RESULTS.previous.md) with its plots: about 7.5 hours on 2 cores. Needs Debian's
# dataset-fashion-mnist (see system-deps). `python bench/run_all.py --list` prints the order and each one's
# expected minutes; `--only NAME,...` runs some in place.
bench: $(INSTALLED)
	$(BIN)/python bench/run_all.py

# The demo recipe, every model measured side by side: Smart Scissor end to end (about 6 minutes on 2 idle cores).
bench-demo: $(INSTALLED)
	$(BIN)/python bench/demo_pipeline.py

# Trimming criteria at half the MACs on cluttered Fashion-MNIST (ResNet- and MobileNetV2-style), glyphs and
# scikit-learn digits, and before fine-tuning at 90% (about 1 h 50 min on 2 cores; needs Debian's
# dataset-fashion-mnist, see system-deps).
bench-trim: $(INSTALLED)
	$(BIN)/python bench/run_all.py --only trim_criteria,trim_criteria_90,trim_criteria_steps,trim_mobilenetv2,trim_mobilenetv2_90,\
	trim_glyphs,trim_glyphs_90,trim_digits,trim_digits_90

# Crop-then-classify against plain down-scaling and perfect crops on cluttered Fashion-MNIST (about 35
# minutes on 2 cores; needs Debian's dataset-fashion-mnist, see system-deps).
bench-crop: $(INSTALLED)
	$(BIN)/python bench/crop_pipeline.py

# Width, depth and resolution alone against the compound search, with and without the cropper, at 50% and 30%
# of the MACs (about 80 minutes on 2 cores after bench-crop, whose baseline and cropper it reuses; about 15
# more without them).
bench-shrink: $(INSTALLED)
	$(BIN)/python bench/compound_shrink.py --reuse

# Float vs post-training int8 vs quantisation-aware training int8, MobileNetV2- and ResNet-style, on cluttered
# Fashion-MNIST (about 12 minutes on 2 cores; needs Debian's dataset-fashion-mnist).
bench-qat: $(INSTALLED)
	$(BIN)/python bench/quantize_qat.py

# Channel trimming against tfmot's prune_low_magnitude at 50% and 75% of the parameters removed, on cluttered
# Fashion-MNIST: accuracy, .tflite and gzip bytes, LiteRT latency (about 15 minutes on 2 cores).
bench-prune: $(INSTALLED)
	$(BIN)/python bench/prune_vs_trim.py

# `tfscissor bench` devices on demo-sized models: LiteRT on the CPU (1 and 2 threads, int8 and float32) and TFLite
# Micro's interpreter (host time), with and without the cropper, then the host crop in C against numpy (about two
# minutes on 2 cores).
bench-devices: $(INSTALLED)
	$(BIN)/python bench/device_latency.py
	$(BIN)/python bench/host_crop.py

lint: $(INSTALLED)
	$(BIN)/ruff check tfscissor tests bench
	$(BIN)/ruff format --check tfscissor tests bench

# Debian packages some tests use (they skip, saying why, when a package is absent). Needs root; CI runs it.
system-deps:
	apt-get update -q
	apt-get install -y -q --no-install-recommends dataset-fashion-mnist gcc-arm-none-eabi libnewlib-arm-none-eabi \
	  libstdc++-arm-none-eabi-newlib g++ \
	  qemu-system-arm cmake chromium

clean:
	rm -rf runs build *.egg-info .pytest_cache
