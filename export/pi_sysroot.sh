#!/bin/sh
# Builds an emulated Raspberry Pi OS (64-bit, bookworm) root for export/pi_check.py:
# Debian bookworm arm64 python3.11 and libstdc++6 with their dependency closure, unpacked.
#
#   export/pi_sysroot.sh CACHE_DIR
#
# The packages are fetched with `apt-get install -d` under a private apt configuration for arm64
# in CACHE_DIR/apt (its own sources, package lists, status and archives), so the host's dpkg
# state is never touched, then unpacked with `dpkg-deb -x` into CACHE_DIR/sysroot. The root is
# built in a temporary folder and renamed into place when complete; a complete root is kept.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 CACHE_DIR" >&2; exit 2; }
CACHE=$(mkdir -p "$1" && cd "$1" && pwd)
SYSROOT="$CACHE/sysroot"
PACKAGES="python3.11 libstdc++6"
MIRROR="http://deb.debian.org/debian"
KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"

if [ -x "$SYSROOT/usr/bin/python3.11" ]; then
  exit 0
fi
for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "pi_sysroot: $tool not found (needs Debian/Ubuntu)" >&2; exit 2; }
done
[ -r "$KEYRING" ] || { echo "pi_sysroot: $KEYRING missing: apt-get install debian-archive-keyring" >&2; exit 2; }

APT="$CACHE/apt"
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/empty"
: > "$APT/status"
echo "deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm main" > "$APT/sources.list"
cat > "$APT/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
Dir::State::status "$APT/status";
Dir::State::lists "$APT/lists";
Dir::Cache "$APT/cache";
Dir::Cache::archives "$APT/archives";
Dir::Etc::SourceList "$APT/sources.list";
Dir::Etc::SourceParts "$APT/empty";
Dir::Etc::PreferencesParts "$APT/empty";
Acquire::Languages "none";
EOF
export APT_CONFIG="$APT/apt.conf"
apt-get -q update
apt-get -q -y install --download-only $PACKAGES

TMP="$CACHE/sysroot.tmp.$$"
rm -rf "$TMP"
mkdir -p "$TMP"
for deb in "$APT"/archives/*.deb; do
  dpkg-deb -x "$deb" "$TMP"
done
mv "$TMP" "$SYSROOT"
echo "pi_sysroot: $SYSROOT: $(ls "$APT"/archives/*.deb | wc -l) arm64 packages unpacked"
