#!/usr/bin/env bash
# Make DIR hold the four un-gzipped Fashion-MNIST idx files that mmpretrain's
# FashionMNIST reads (train-images-idx3-ubyte, train-labels-idx1-ubyte,
# t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte):
#   bash tools/get_fashion_mnist.sh DIR
# Source: the Debian package dataset-fashion-mnist (MIT), taken from
# /usr/share/datasets/fashion-mnist if installed, else installed with apt-get
# when running as root, else downloaded with `apt-get download` and unpacked
# with dpkg-deb (no root needed). Quiet and idempotent; where neither works
# (offline), exits 2 with what to do, before making DIR.
set -euo pipefail

dest=${1:?usage: get_fashion_mnist.sh DIR}
package=dataset-fashion-mnist
package_dir=/usr/share/datasets/fashion-mnist
installed=${FASHION_MNIST_SYSTEM_DIR:-$package_dir}  # override: for testing
files=(train-images-idx3-ubyte train-labels-idx1-ubyte
       t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

have_all() {
    local f
    for f in "${files[@]}"; do [ -s "$dest/$f" ] || return 1; done
}
have_all && exit 0

src=$installed
tmp=
cleanup() {
    rm -f "$dest"/*.part
    if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
cannot_get() {
    echo "cannot $1 the Debian package $package; install it" \
        "(apt-get install $package) or put the four files in $dest" >&2
    exit 2
}
if [ ! -s "$src/${files[0]}.gz" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq "$package" >/dev/null 2>&1; then
            apt-get update -qq >/dev/null || true
            apt-get install -y -qq "$package" >/dev/null || cannot_get install
        fi
    else
        tmp=$(mktemp -d)
        if ! (cd "$tmp" && apt-get download -qq "$package" >/dev/null 2>&1)
        then
            cannot_get download
        fi
        dpkg-deb -x "$tmp"/"$package"_*.deb "$tmp/root"
        src=$tmp/root$package_dir
    fi
fi

mkdir -p "$dest"
for f in "${files[@]}"; do
    gunzip -c "$src/$f.gz" > "$dest/$f.part"
    mv "$dest/$f.part" "$dest/$f"
done
