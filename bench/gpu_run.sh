#!/usr/bin/env bash
# One command for the lent GPU machine (no network):  bash bench/gpu_run.sh [gpu_embed.py args]
# CPU smoke run here:  PYTHON=.venv/bin/python bash bench/gpu_run.sh --device cpu --smoke
#
# Needs the ignored folder .gpu_carry/ (carried next to the working tree), made by
# bench/make_gpu_carry.sh:
#   pytriton_min.tar.xz  tritonserver binary, Python backend, 3.11/3.12 stubs, bundled libs
#                        (pruned from the nvidia-pytriton 0.7.0 wheel: 27 MB instead of 55)
#   wheels/*.whl         tritonclient 2.73 (gRPC) and what it imports: python-rapidjson,
#                        ml-dtypes, packaging, protobuf 6, grpcio (cp312 builds)
#   model/               all-MiniLM-L6-v2 config.json + tokenizer + sentence-transformers files
# Unpacks them under $SITE (default /tmp/site), puts $SITE on PYTHONPATH for the client
# side, then runs bench/gpu_embed.py (6-minute budget inside) writing $OUT/gpu_embed.md.
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
SITE="${GOVRAG_GPU_SITE:-/tmp/site}"
CARRY="${GOVRAG_GPU_CARRY:-$REPO/.gpu_carry}"
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$SITE" "$OUT"
exec > >(tee -a "$OUT/gpu_run.log") 2>&1  # the whole log comes back with the table
t0=$(date +%s)
echo "[gpu_run] python: $(command -v "$PY") ($("$PY" -V 2>&1)); carry: $(du -sh "$CARRY" 2>/dev/null | cut -f1)"
if [ ! -x "$SITE/pytriton/tritonserver/bin/tritonserver" ]; then
  "$PY" - "$CARRY/pytriton_min.tar.xz" "$SITE" <<'PY' || echo "[gpu_run] WARNING: could not unpack pytriton"
import sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    try:
        tf.extractall(sys.argv[2], filter="tar")
    except TypeError:  # Python without extraction filters
        tf.extractall(sys.argv[2])
PY
fi
# One wheel at a time: a wheel for another Python (e.g. cp312 in a 3.11 smoke run) is skipped,
# not fatal; the interpreter's own packages are used then. Without pip, unzip them (a
# --no-deps install of these wheels is an unzip: no scripts, no data dirs that matter).
for whl in "$CARRY"/wheels/*.whl; do
  [ -e "$whl" ] || continue
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$SITE" "$whl" \
      >/dev/null 2>&1 || echo "[gpu_run] skipped $(basename "$whl") (not for this Python)"
  else
    "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$whl" "$SITE" \
      && echo "[gpu_run] no pip: unzipped $(basename "$whl")"
  fi
done
echo "[gpu_run] unpacked in $(( $(date +%s) - t0 ))s"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export GOVRAG_GPU_SITE="$SITE"
"$PY" "$REPO/bench/gpu_embed.py" --site "$SITE" --carry "$CARRY" --out "$OUT/gpu_embed.md" "$@"
rc=$?
echo "[gpu_run] exit $rc after $(( $(date +%s) - t0 ))s; table in $OUT/gpu_embed.md"
exit $rc
