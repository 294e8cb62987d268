#!/usr/bin/env bash
# Put Fashion-MNIST where torchvision looks: data/FashionMNIST/raw/*-ubyte (extracted).
# Offline source: Debian's package dataset-fashion-mnist; else torchvision's download.
set -euo pipefail
DEST="${1:-data}/FashionMNIST/raw"
SRC=/usr/share/datasets/fashion-mnist
FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
have_all() { for f in $FILES; do [ -s "$DEST/$f" ] || return 1; done; }
if have_all; then exit 0; fi
if [ ! -d "$SRC" ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo -n"
  echo "installing Debian package dataset-fashion-mnist ..." >&2
  { $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; } \
    || echo "apt-get could not install dataset-fashion-mnist; trying torchvision's download" >&2
fi
mkdir -p "$DEST"
if [ -d "$SRC" ]; then
  for f in $FILES; do
    tmp="$DEST/.$f.tmp"
    gunzip -c "$SRC/$f.gz" > "$tmp" && mv "$tmp" "$DEST/$f"
  done
else
  "${PYTHON:-.venv/bin/python}" -c "
from torchvision.datasets import FashionMNIST
for train in (True, False):
    FashionMNIST('${1:-data}', train=train, download=True)
" || { echo "prunelab: error: could not get Fashion-MNIST (no Debian package, no network)" >&2; exit 1; }
fi
have_all && echo "Fashion-MNIST ready in $DEST" >&2
