#!/usr/bin/env bash
# Builds llama.cpp's own tools (llama-server, llama-quantize, llama-bench, llama-batched-bench,
# llama-perplexity) from the source vendored in the llama-cpp-python sdist that scripts/install-llama.sh
# builds the wheel from: the same llama.cpp and the same portable CPU flags, so benchmarks compare
# engines, not builds. Only bench/engine needs them. Cached per version and flags like the wheel;
# prints the folder holding the binaries.
set -euo pipefail

version=0.3.36
flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
flags="$flags -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_CURL=OFF"
flags="$flags -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF"
key=$(printf '%s %s' "$version" "$flags" | sha256sum | cut -c1-12)
cache="${INTERLOCK_TOOLS_CACHE:-$HOME/.cache/interlock/tools}/llama-cpp-$version-$key"
tools="llama-server llama-quantize llama-bench llama-batched-bench llama-perplexity"

if [ -x "$cache/bin/llama-server" ]; then
  echo "$cache/bin"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip=${PIP:-.venv/bin/pip}
echo "Building llama.cpp tools $version (once per machine; 10-20 minutes on 2 cores)..." >&2
"$pip" download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work" >&2
tar -xzf "$work"/llama_cpp_python-$version.tar.gz -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
# shellcheck disable=SC2086
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release $flags >&2
# shellcheck disable=SC2086
cmake --build "$work/build" -j "$(nproc)" --target $tools >&2
mkdir -p "$cache.tmp/bin"
for t in $tools; do cp "$work/build/bin/$t" "$cache.tmp/bin/"; done
rm -rf "$cache" && mv "$cache.tmp" "$cache"
echo "$cache/bin"
