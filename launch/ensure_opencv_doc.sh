#!/bin/sh
# Makes sure the examples data of the Debian package `opencv-doc` (real photos, paintings and
# murals: starry_night.jpg, graf1.png, fruits.jpg, ...) is unpacked under DIR.
#
#   sh launch/ensure_opencv_doc.sh [DIR]    (default DIR: ~/.cache/lwgen/opencv-doc)
#
# The data lands in DIR/usr/share/doc/opencv-doc/examples/data (lwgen.data.photos.OPENCV_DOC_DATA
# for the default DIR). Exits 0 when it is there. Otherwise downloads the package with
# `apt-get download` (no root needed, no dependencies installed) and unpacks only that folder
# with `dpkg-deb --fsys-tarfile`. If that cannot be done, prints one line saying how and exits 1.
set -u
DIR=${1:-$HOME/.cache/lwgen/opencv-doc}
DATA=usr/share/doc/opencv-doc/examples/data
PACKAGE=opencv-doc

[ -f "$DIR/$DATA/starry_night.jpg" ] && exit 0
how="ensure_opencv_doc: cannot fetch the Debian package $PACKAGE; on Debian/Ubuntu run \`apt-get download $PACKAGE && dpkg-deb -x ${PACKAGE}_*.deb $DIR\`"
command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || { echo "$how" >&2; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q "$PACKAGE" >/dev/null 2>&1) || { echo "$how" >&2; exit 1; }
mkdir -p "$tmp/x" && dpkg-deb --fsys-tarfile "$tmp"/${PACKAGE}_*.deb | tar -x -C "$tmp/x" "./$DATA" \
    || { echo "$how" >&2; exit 1; }
mkdir -p "$DIR/usr/share/doc/opencv-doc/examples" && rm -rf "$DIR/$DATA" \
    && mv "$tmp/x/$DATA" "$DIR/$DATA" || { echo "$how" >&2; exit 1; }
