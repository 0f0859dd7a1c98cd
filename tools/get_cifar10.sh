#!/usr/bin/env bash
# Extract the CIFAR-10 JPEG tree (train/<class>/*.jpg, test/<class>/*.jpg) that
# mmpretrain's CustomDataset reads, from an archive of it.
#   bash tools/get_cifar10.sh DEST [ARCHIVE]
# ARCHIVE defaults to ../shared/data/cifar10-jpg.tar.xz next to the repository.
set -euo pipefail
dest=${1:?usage: get_cifar10.sh DEST [ARCHIVE]}
here=$(cd "$(dirname "$0")/.." && pwd)
archive=${2:-$here/../shared/data/cifar10-jpg.tar.xz}
if [ -d "$dest/train/truck" ] && [ -d "$dest/test/truck" ]; then
    exit 0
fi
if [ ! -f "$archive" ]; then
    echo "CIFAR-10 archive not found: $archive" >&2
    echo "pass the path of cifar10-jpg.tar.xz as the second argument" >&2
    exit 2
fi
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.extract.XXXX")
tar -xJf "$archive" -C "$tmp"
top=$(find "$tmp" -maxdepth 3 -type d -name train -printf '%h\n' | head -n 1)
if [ -z "$top" ]; then
    echo "no train/ folder inside $archive" >&2
    rm -rf "$tmp"
    exit 2
fi
mv "$top/train" "$top/test" "$dest/"
rm -rf "$tmp"
echo "CIFAR-10: $(find "$dest/train" -name '*.jpg' | wc -l) train and" \
    "$(find "$dest/test" -name '*.jpg' | wc -l) test images in $dest"
