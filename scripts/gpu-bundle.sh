#!/usr/bin/env bash
# Run here (Debian 12, with network to Debian's mirrors): downloads the Debian
# packages bertserve builds against (gRPC, protobuf, Abseil, spdlog,
# prometheus-cpp, CLI11, utf8proc, nlohmann-json, GoogleTest, Google
# Benchmark) with their library dependencies, and unpacks them into
# .deps/gpu-sysroot, for scripts/gpu-check.sh on a GPU machine that has CUDA
# and PyTorch but no network. libtorch itself comes from the GPU machine's
# PyTorch.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$here/.deps/gpu-sysroot
debs=$here/.deps/gpu-debs
top=(libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev libabsl-dev
     libspdlog-dev prometheus-cpp-dev libcli11-dev libutf8proc-dev nlohmann-json3-dev
     libgtest-dev libgmock-dev libbenchmark-dev pkgconf)
# What every Linux with a C++ toolchain has; newer versions there are compatible.
skip='^(libc6|libc6-dev|libgcc-s1|libstdc\+\+6|libstdc\+\+-.*-dev|gcc-.*|libc-dev-bin|linux-libc-dev|libcrypt.*|debconf.*|dpkg|perl.*|tar|zlib1g)$'

mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances "${top[@]}" \
  | grep -E '^[a-z0-9]' | grep -Ev "$skip" | sort -u)
rm -rf "$debs" "$out"
mkdir -p "$debs" "$out"
(cd "$debs" && apt-get download "${closure[@]}" >/dev/null)
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$out"; done
rm -rf "$debs"
# What a build does not read: docs, sources, and the static libraries no
# CMake config names (only GoogleTest's and Google Benchmark's are used).
rm -rf "$out/usr/share/doc" "$out/usr/share/man" "$out/usr/share/locale" \
  "$out/usr/share/lintian" "$out/usr/src"
find "$out/usr/lib" -name '*.a' ! -name 'libgtest*.a' ! -name 'libgmock*.a' \
  ! -name 'libbenchmark*.a' -delete
# One archive, small enough to travel to the GPU machine (gpu-check.sh
# unpacks it when the folder is not there).
tar -C "$(dirname "$out")" -cJf "$out.tar.xz" "$(basename "$out")"
du -sh "$out" "$out.tar.xz"
echo "gpu-bundle: unpacked ${#closure[@]} packages into $out and packed $out.tar.xz"
