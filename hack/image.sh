#!/usr/bin/env bash
# make image: build the project's Dockerfile with podman, here and on any Debian machine without a
# Docker engine or a reachable container registry.
#
# - podman, runc and mmdebstrap come from Debian's packages (installed when missing);
# - runc, not crun (crun refuses this kernel's hybrid cgroup layout), and explicit ulimits (the
#   default RLIMIT_NOFILE is refused without CAP_SYS_RESOURCE): a containers.conf of our own;
# - the base image: the official Python image when a registry is reachable (PYTHON_IMAGE=...), else
#   Debian bookworm built from Debian's packages (python3 3.11 in a venv first on PATH, as the
#   official image has pip on PATH), imported once and kept;
# - pip inside the build uses the machine's CA bundle (mounted read-only, PIP_CERT).
#
# Prints the image's name and size. IMAGE (default localhost/kubescim:dev) names the result.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-localhost/kubescim:dev}"
BASE="${PYTHON_IMAGE:-localhost/kubescim-base:bookworm-py3.11}"
CACHE="${KUBESCIM_CACHE:-$PWD/.cache}/image"
mkdir -p "$CACHE"

missing=()
for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "image: installing ${missing[*]} (Debian packages)" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "image: needs root to install ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

# Our containers.conf: runc, and ulimits this machine's kernel lets a process set.
export CONTAINERS_CONF="$CACHE/containers.conf"
cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
CONF

if ! podman image exists "$BASE"; then
  case "$BASE" in
    localhost/*)
      echo "image: building the Debian bookworm base $BASE (mmdebstrap)" >&2
      tarball="$CACHE/base.tar"
      rm -f "$tarball"
      mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
        --customize-hook='chroot "$1" python3 -m venv /opt/python' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        bookworm "$tarball"
      podman import --quiet \
        --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        "$tarball" "$BASE" >/dev/null
      rm -f "$tarball"
      ;;
    *) podman pull "$BASE" >/dev/null ;;
  esac
fi

ca=/etc/ssl/certs/ca-certificates.crt
started=$(date +%s)
podman build --quiet --network host \
  --build-arg "PYTHON_IMAGE=$BASE" \
  --build-arg "PIP_CERT=$ca" \
  --volume "$ca:$ca:ro" \
  --tag "$IMAGE" . >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image: $IMAGE built in $(( $(date +%s) - started )) s, $(( size / 1024 / 1024 )) MiB" >&2
echo "$IMAGE"
