#!/usr/bin/env bash
# Build the separate Python environment the Triton server runs in (default: <repo>/.venv-triton).
#
# Why a separate venv: the nvidia-pytriton wheel (which carries the real `tritonserver` binary
# and its Python backend) pins numpy<2, while the main venv needs numpy>=2 (pymilvus -> pandas 3).
# In production Triton runs in its own container; this venv plays that role locally and in CI.
#
# Idempotent: re-running only installs what is missing. Needs only pip and the package registry.
#   GOVRAG_TRITON_ENV   target directory (default <repo>/.venv-triton)
#   PYTHON              interpreter used to create the venv (default python3; must be 3.11,
#                       the version the Python backend stub in pytriton is built for)
#   TORCH_INDEX_URL     optional extra index for torch (e.g. https://download.pytorch.org/whl/cpu)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${GOVRAG_TRITON_ENV:-$REPO/.venv-triton}"
PY="${PYTHON:-python3}"

ver="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
if [ "$ver" != "3.11" ]; then
  echo "setup_triton_env: $PY is Python $ver; the pytriton Python backend stub needs 3.11" >&2
  echo "  set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

if [ ! -x "$ENV_DIR/bin/python" ]; then
  echo "setup_triton_env: creating $ENV_DIR"
  "$PY" -m venv "$ENV_DIR"
fi
PIP=("$ENV_DIR/bin/python" -m pip install --quiet)

# torch first and alone, so no later dependency can pull a multi-GB CUDA build on a CPU box.
if ! "$ENV_DIR/bin/python" -c 'import torch' 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" --extra-index-url "$TORCH_INDEX_URL" "torch==2.13.0"
  else
    "${PIP[@]}" "torch==2.13.0"
  fi
fi

# Server side: tritonserver binary + python backend (nvidia-pytriton), and what model.py imports.
"${PIP[@]}" "numpy<2" "nvidia-pytriton" "safetensors" "transformers" "tokenizers"

# Sanity check: the binary, the python backend and the 3.11 stub exist, and the stub finds a
# libpython3.11 once LD_LIBRARY_PATH=<python LIBDIR> (what start_triton sets) is in place.
"$ENV_DIR/bin/python" - <<'PY'
import os, pathlib, subprocess, sys, sysconfig
import numpy, torch
import pytriton
root = pathlib.Path(pytriton.__file__).parent / "tritonserver"
binary = root / "bin" / "tritonserver"
backend = root / "backends" / "python" / "libtriton_python.so"
stub = root / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
for p in (binary, backend, stub):
    if not p.exists():
        sys.exit(f"setup_triton_env: missing {p}")
libdir = sysconfig.get_config_var("LIBDIR")
env = dict(os.environ, LD_LIBRARY_PATH=libdir)
ldd = subprocess.run(["ldd", str(stub)], env=env, capture_output=True, text=True).stdout
if "not found" in ldd:
    sys.exit(f"setup_triton_env: the stub misses libraries even with LD_LIBRARY_PATH={libdir}:\n{ldd}")
print(f"setup_triton_env: ok  torch {torch.__version__}  numpy {numpy.__version__}  {binary}")
PY
