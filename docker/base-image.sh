#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11, made on this machine where Docker Hub is out
# of reach: mmdebstrap a minimal root file system from Debian's mirror, add the machine's local
# CA certificates (those of a TLS-inspecting proxy, say, so that pip can reach PyPI from the
# build), and import it into podman.
#
#   docker/base-image.sh [TAG]     (default localhost/churnwatch-base:bookworm)
#
# Elsewhere, build FROM the official python:3.11-slim-bookworm (the Dockerfile's default).
set -euo pipefail
tag=${1:-localhost/churnwatch-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
for tool in mmdebstrap podman; do
  command -v "$tool" >/dev/null || { echo "base-image: $tool is needed (apt-get install $tool)" >&2; exit 1; }
done
hooks=()
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  hooks+=(--customize-hook='copy-in /usr/local/share/ca-certificates /usr/local/share'
          --customize-hook='chroot "$1" update-ca-certificates')
fi
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
  "${hooks[@]}" bookworm - "$mirror" | podman import --quiet - "$tag"
echo "base image $tag"
