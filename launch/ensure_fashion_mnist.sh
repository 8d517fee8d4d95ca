#!/bin/sh
# Makes sure the four Fashion-MNIST IDX files (the `fashion_mnist_idx` data source) are present.
#
#   sh launch/ensure_fashion_mnist.sh [DIR]    (default DIR: /usr/share/datasets/fashion-mnist)
#
# Exits 0 when DIR holds all four files. If they are missing from the default folder and apt-get
# is usable (running as root, or passwordless sudo), installs the Debian package
# `dataset-fashion-mnist`, which puts them there. Otherwise prints one line saying how to install
# them and exits 1.
set -u
DEFAULT_DIR=/usr/share/datasets/fashion-mnist
DIR=${1:-$DEFAULT_DIR}
PACKAGE=dataset-fashion-mnist
FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

missing() {
    for f in $FILES; do
        [ -f "$DIR/$f" ] || return 0
    done
    return 1
}

apt_install() {  # "$@": an optional "sudo -n" prefix
    apt="env DEBIAN_FRONTEND=noninteractive apt-get"
    "$@" $apt install -y -q "$PACKAGE" || { "$@" $apt update -q && "$@" $apt install -y -q "$PACKAGE"; }
}

missing || exit 0
if [ "$DIR" = "$DEFAULT_DIR" ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt_install >&2
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        apt_install sudo -n >&2
    fi
fi
missing || exit 0
echo "ensure_fashion_mnist: the Fashion-MNIST IDX files are not all in $DIR; install them with" \
    "\`sudo apt-get install $PACKAGE\` (they go to $DEFAULT_DIR), or copy the four" \
    "*-ubyte.gz files there" >&2
exit 1
