# Looper for one hardware profile:  docker build --build-arg HW=4060 -t looper:4060 .
#                                   docker build --build-arg HW=h100 -t looper:h100 .
# Run a make target:  docker run --gpus all --env-file .env -v "$PWD/data:/app/data" \
#   -v "$PWD/checkpoints:/app/checkpoints" -v "$PWD/outputs:/app/outputs" looper:4060 phaseA
# The pinned torch 2.13 wheels on PyPI are built for CUDA 13.0, hence this runtime base.
FROM nvidia/cuda:13.0.2-runtime-ubuntu24.04

ARG HW=4060
LABEL org.opencontainers.image.title="looper" \
      org.opencontainers.image.description="Teacher-distilled reasoning and correctness-first DPO for small open models" \
      org.opencontainers.image.version="0.1.0" \
      io.looper.hw-profile="${HW}"

# PY and an empty SETUP_STAMP make the Makefile use this image's Python instead of a venv.
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/cache/huggingface \
    HW=${HW} \
    PY=python \
    SETUP_STAMP=

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv make ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /app
COPY requirements.txt requirements-gpu.txt ./
# Exactly the pins; the 4060 image adds bitsandbytes (requirements-gpu.txt). flash-attn has no
# prebuilt wheel on PyPI for every torch/CUDA pair: without one the h100 image uses sdpa.
# hadolint ignore=DL3013
RUN if [ "$HW" = "4060" ]; then pip install -r requirements-gpu.txt; else pip install -r requirements.txt; fi \
    && if [ "$HW" = "h100" ]; then pip install --only-binary=:all: flash-attn || echo "no flash-attn wheel: sdpa"; fi

COPY . .
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 1000 looper \
    && mkdir -p /cache/huggingface data checkpoints outputs \
    && chown -R looper /app /cache

USER 1000
VOLUME ["/cache/huggingface"]
ENTRYPOINT ["docker/entrypoint.sh"]
CMD ["help"]
