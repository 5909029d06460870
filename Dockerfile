# The govrag image: one image for every govrag process of the compose stack (Dagster code
# location, webserver and daemon, the retrieval HTTP service, the one-shot init jobs).
#
#   docker build -t govrag:0.1.0 .
#
# Install order follows the Makefile, for the same reasons (README "Setup details"):
#   1. torch==2.13.0, the CPU build, FIRST: nothing later may pull a multi-GB CUDA torch.
#      govrag does not need a GPU torch: embeddings come from Triton (GOVRAG_EMBEDDER=triton)
#      or from the small CPU model. GPU variant (only to run the local embedder on a GPU):
#      --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130 --build-arg TORCH_VARIANT=cuda
#   2. unstructured-inference with --no-deps: partition_pdf imports it, but its own
#      requirements (timm -> torchvision) would replace torch with a CUDA build. Never
#      `unstructured[pdf]`, for the same reason; pyproject.toml lists the pieces one by one.
#   3. the project's dependencies (read from pyproject.toml, so this layer is cached until
#      they change), then the project itself with --no-deps.
# No secret is baked in: passwords and URLs with passwords come from env files at run time
# (deploy/env/*.env, ignored by .dockerignore and git).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VARIANT=cpu

RUN python -m venv /opt/venv && pip install --upgrade pip

# 1. CPU torch first (same version as the Makefile).
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

# 2. unstructured-inference without its requirements.
RUN pip install --no-deps "unstructured-inference>=1.6.12,<2"

# 3a. The project's dependencies only (cached while pyproject.toml is unchanged).
COPY pyproject.toml /src/pyproject.toml
RUN python -c "import tomllib; \
deps = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']; \
print(chr(10).join(deps))" > /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# 3b. The project itself (not editable: the runtime image has no source tree).
COPY README.md /src/README.md
COPY governance /src/governance
COPY embedding /src/embedding
COPY ingest /src/ingest
COPY retrieval /src/retrieval
COPY dagster_project /src/dagster_project
COPY govrag /src/govrag
RUN pip install --no-deps /src

# Nothing above may have replaced the CPU torch (the Makefile makes the same check), and the
# packages import. (No `pip check`: unstructured-inference's own requirements are left out on
# purpose, so it would always complain.)
RUN python -c "import sys, torch; v = torch.__version__; \
sys.exit(0 if '${TORCH_VARIANT}' != 'cpu' or v.endswith('+cpu') else 'CUDA torch pulled in: ' + v)"
RUN python -c "import governance, embedding, ingest, retrieval, dagster_project, govrag.cli.main"

# -------------------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime

# poppler-utils: pdf2image (scanned PDFs); libmagic1: unstructured's file-type detection;
# libgomp1/libglib2.0-0: onnxruntime and OpenCV (headless) at import time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 libglib2.0-0 libmagic1 poppler-utils \
 && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid so named volumes keep working across rebuilds.
RUN groupadd --system --gid 10001 govrag \
 && useradd --system --uid 10001 --gid govrag --home-dir /var/lib/govrag --shell /usr/sbin/nologin govrag \
 && mkdir -p /var/lib/govrag /var/lib/govrag-models /srv/govrag/drop /opt/dagster/home /opt/dagster/storage \
 && chown -R govrag:govrag /var/lib/govrag /var/lib/govrag-models /opt/dagster

COPY --from=build /opt/venv /opt/venv
# Instance and workspace config for the compose stack (compose also mounts them read-only,
# so edits there apply without a rebuild).
COPY --chown=govrag:govrag deploy/dagster/dagster.yaml deploy/dagster/workspace.yaml /opt/dagster/home/

# Offline at run time (DESIGN.md invariant 6): no hub downloads, no analytics.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SCARF_NO_ANALYTICS=true \
    DO_NOT_TRACK=true \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    UNSTRUCTURED_DISABLE_NOTICE=1 \
    GOVRAG_HOME=/var/lib/govrag \
    DAGSTER_HOME=/opt/dagster/home

USER govrag:govrag
WORKDIR /var/lib/govrag

# 8080 retrieval service, 4000 Dagster code location (gRPC), 3000 Dagster webserver
EXPOSE 8080 4000 3000

CMD ["govrag", "--help"]
