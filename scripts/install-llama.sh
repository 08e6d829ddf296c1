#!/usr/bin/env bash
# Installs llama-cpp-python into the given venv, built from source with portable CPU flags.
#
# PyPI has no binary wheel for Linux, and the default -march=native build segfaults in
# ggml_backend_amx_mul_mat on Xeons with AMX for any prompt longer than one token (llama.cpp
# issue 20824). We build with GGML_NATIVE=OFF and the SIMD levels every x86-64-v3 CPU has, and
# keep the wheel in a cache keyed by version and flags, so only the first install pays the
# 6-11 minute build.
set -euo pipefail

venv=${1:-.venv}
version=0.3.36
flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
flags="$flags -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
key=$(printf '%s %s' "$version" "$flags" | sha256sum | cut -c1-12)
cache="${INTERLOCK_WHEEL_CACHE:-$HOME/.cache/interlock/wheels}/llama-cpp-python-$version-$key"
marker="$venv/.llama-$key"

if [ -f "$marker" ]; then
  exit 0
fi
if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "Building llama-cpp-python $version from source (6-11 minutes, once per machine)..." >&2
  mkdir -p "$cache"
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$venv/bin/pip" wheel --no-deps --no-cache-dir -w "$cache.tmp" "llama-cpp-python==$version"
  mv "$cache.tmp"/llama_cpp_python-*.whl "$cache"/
  rmdir "$cache.tmp"
fi
"$venv/bin/pip" install --no-deps --force-reinstall "$cache"/llama_cpp_python-*.whl
touch "$marker"
