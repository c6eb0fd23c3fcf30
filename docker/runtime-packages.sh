#!/usr/bin/env bash
# Prints the Debian/Ubuntu packages that own every shared library the given
# binaries load, one per line, for an image's runtime stage to install. Run in
# the build stage, where the binaries were linked.
#
#   docker/runtime-packages.sh [--bundled DIR]... BINARY... > runtime-packages
#
# --bundled DIR: libraries under DIR are copied into the image as they are
# (the CUDA image's /opt/libtorch/lib), so they need no package.
#
# Fails, naming them, when a library is not found or no package owns it: an
# image built without it would not start.
set -euo pipefail

usage() {
  echo "usage: $0 [--bundled DIR]... BINARY..." >&2
  exit 2
}
bundled=()
while [[ $# -gt 0 && $1 == --* ]]; do
  [[ $# -ge 2 ]] || usage
  case $1 in
    --bundled) bundled+=("$(realpath "$2")") ;;
    *) usage ;;
  esac
  shift 2
done
[[ $# -gt 0 ]] || usage

# ldd lists the whole closure, not only DT_NEEDED: naming the owner of each
# library, not just of the direct ones, keeps providers that apt would
# otherwise choose for itself (libblas.so.3 from OpenBLAS, not the reference
# BLAS that libtorch's dependency also accepts).
libs=()
missing=()
for bin in "$@"; do
  out=$(ldd "$bin") || { echo "runtime-packages: ldd $bin failed" >&2; exit 1; }
  while read -r name arrow path _; do
    [[ $arrow == "=>" ]] || continue
    if [[ $path == not ]]; then
      missing+=("$name (needed by $bin)")
    elif [[ $path == /* ]]; then
      libs+=("$path")
    fi
  done <<<"$out"
done
if ((${#missing[@]} > 0)); then
  printf 'runtime-packages: not found by the loader: %s\n' "${missing[@]}" >&2
  exit 1
fi
mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)

# The spellings under which dpkg may know a library. ldd prints the path the
# loader took (on merged-/usr systems usually /lib/...), which is often a
# symlink (a soname link, or /etc/alternatives for BLAS and LAPACK); dpkg knows
# the file under the path its package ships, with or without the /usr prefix.
spellings() {
  local p
  for p in "$(realpath "$1")" "$1"; do
    echo "$p"
    if [[ $p == /usr/* ]]; then echo "${p#/usr}"; else echo "/usr$p"; fi
  done
}

declare -A owner=()   # path -> owning package(s)
queries=()
for lib in "${libs[@]}"; do
  mapfile -t -O "${#queries[@]}" queries < <(spellings "$lib")
done
# One dpkg call for every spelling (each call reads the whole database). An
# absolute pattern matches that path exactly; unknown ones only go to stderr.
while IFS= read -r line; do
  [[ $line == "diversion by "* ]] && continue
  pkgs=${line%%: /*}
  path=${line#"$pkgs: "}
  owner[$path]=$pkgs
done < <(dpkg -S "${queries[@]}" 2>/dev/null || true)

packages=()
unowned=()
for lib in "${libs[@]}"; do
  real=$(realpath "$lib")
  skip=false
  for dir in "${bundled[@]}"; do
    if [[ $real == "$dir"/* ]]; then skip=true; fi
  done
  $skip && continue
  found=""
  while read -r p; do
    if [[ -n ${owner[$p]:-} ]]; then found=${owner[$p]}; break; fi
  done < <(spellings "$lib")
  if [[ -z $found ]]; then
    unowned+=("$lib -> $real")
    continue
  fi
  # "pkg1:amd64, pkg2: path": several packages may ship one path; each of
  # them provides it, the first will do.
  found=${found%%,*}
  packages+=("${found%%:*}")
done
if ((${#unowned[@]} > 0)); then
  printf 'runtime-packages: no package owns %s\n' "${unowned[@]}" >&2
  exit 1
fi
printf '%s\n' "${packages[@]}" | sort -u
echo "runtime-packages: ${#libs[@]} libraries, $(printf '%s\n' "${packages[@]}" | sort -u | wc -l) packages" >&2
