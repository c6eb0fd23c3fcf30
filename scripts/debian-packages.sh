#!/usr/bin/env bash
# Sourced by the scripts that install what they need (setup.sh,
# image-check.sh): installs those of the named Debian packages that are not
# installed yet, and nothing else; apt-get update only when something is
# missing. Uses sudo when not root.
#
#   install_missing_packages TAG PACKAGE...
install_missing_packages() {
  local tag=$1
  shift
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]} > 0)) || return 0
  echo "$tag: installing ${missing[*]}"
  local sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
}
