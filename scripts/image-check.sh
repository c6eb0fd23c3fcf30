#!/usr/bin/env bash
# Builds docker/Dockerfile.cpu as a user's CI would (only the debian:12 base
# is made here, with mmdebstrap, since no image registry can be reached), runs
# the image with the demo model repository mounted, and checks from the host
# that bertserve starts, turns ready, and answers Classify with the scores
# PyTorch gives for the same model.pt (docker/check_image.py). Prints the
# image's size and the build time.
#
#   scripts/image-check.sh
#
# Uses buildah (vfs storage, chroot isolation: no Docker engine, no daemon)
# and needs root. Installs what is missing (buildah, mmdebstrap, the Python
# client's packages). Everything it keeps lives in IMAGE_CHECK_DIR (default
# ~/.cache/bertserve-image-check), outside the checkout so that a fresh clone
# reuses it: buildah's storage with the base image, and the build's ccache
# (the Dockerfile's cache mount). The base is made again when older than
# IMAGE_CHECK_BASE_MAX_AGE_DAYS (default 7) days.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/debian-packages.sh
source "$here/scripts/debian-packages.sh"
dir=${IMAGE_CHECK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bertserve-image-check}
max_age_days=${IMAGE_CHECK_BASE_MAX_AGE_DAYS:-7}
image=localhost/bertserve:cpu-check
base=docker.io/library/debian:12
python=/usr/bin/python3

if [[ $(id -u) -ne 0 ]]; then
  echo "image-check: needs root (buildah with vfs storage and chroot isolation)" >&2
  exit 1
fi

packages=(buildah mmdebstrap python3 python3-torch python3-grpcio python3-protobuf
          protobuf-compiler)
# scripts/make-demo-repo.sh fetches the vocabulary with npm (see setup.sh).
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
install_missing_packages image-check "${packages[@]}"

mkdir -p "$dir/tmp"
# One check at a time per cache directory.
exec 9>"$dir/lock"
if ! flock -n 9; then
  echo "image-check: waiting for another image-check using $dir"
  flock 9
fi
# buildah's cache mounts (ccache) and temporary files go to TMPDIR.
export TMPDIR=$dir/tmp
bh() {
  buildah --root "$dir/storage" --runroot "$dir/run" --storage-driver vfs "$@"
}

container=""
scratch=""
cleanup() {
  if [[ -n $container ]]; then bh rm "$container" >/dev/null || true; fi
  if [[ -n $scratch ]]; then bh rm "$scratch" >/dev/null || true; fi
  rm -f "$dir/tmp/rootfs.tar"
}
trap cleanup EXIT

# The base image: Debian 12 minbase with the sources of the official image.
created=$(bh inspect --type image --format '{{.OCIv1.Created.Unix}}' "$base" 2>/dev/null || echo 0)
if (( $(date +%s) - created > max_age_days * 86400 )); then
  echo "image-check: making $base with mmdebstrap"
  nice -n 10 mmdebstrap --quiet --variant=minbase bookworm "$dir/tmp/rootfs.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" </dev/null
  scratch=$(bh from scratch)
  bh add --quiet "$scratch" "$dir/tmp/rootfs.tar" /
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd bash "$scratch"
  bh commit --quiet --rm "$scratch" "$base" >/dev/null
  scratch=""
  rm -f "$dir/tmp/rootfs.tar"
fi

echo "image-check: building docker/Dockerfile.cpu"
start=$(date +%s)
nice -n 10 buildah --root "$dir/storage" --runroot "$dir/run" --storage-driver vfs \
  bud --isolation chroot --pull=never -f "$here/docker/Dockerfile.cpu" -t "$image" "$here"
build_seconds=$(( $(date +%s) - start ))
# The image this one replaced, and anything else no longer named.
bh rmi --prune >/dev/null || true

"$here/scripts/make-demo-repo.sh" "$here/demo-models"

container=$(bh from --pull=never --name "bertserve-image-check-$$" "$image")
# `buildah run` covers a declared VOLUME with an empty one, even over a -v
# mount there (`docker run -v` does not); only this container forgets it.
bh config --volume /models- "$container"
size_mb=$(du -s --block-size=1M "$(bh mount "$container")" | cut -f1)
bh umount "$container" >/dev/null
echo "image-check: $image built in ${build_seconds}s; image size ${size_mb} MB (uncompressed)"

"$python" "$here/docker/check_image.py" --image "$image" --container "$container" \
  --models "$here/demo-models/models" \
  -- buildah --root "$dir/storage" --runroot "$dir/run" --storage-driver vfs
echo "image-check: passed (build ${build_seconds}s, image ${size_mb} MB)"
