#!/bin/sh
# Installs the Debian packages dati needs to build, test and benchmark, but
# only those that are missing: a machine that has them all is not touched.
set -eu

PKGS="build-essential pkg-config libpcap-dev libhiredis-dev libxml2-dev libpcre2-dev libmicrohttpd-dev libndpi-dev libndpi-bin python3 python3-pytest python3-redis
      redis-server redis-tools tcpdump tshark clang tcpreplay iproute2 nfdump softflowd
      prometheus python3-prometheus-client python3-selenium chromium chromium-driver"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "dati: installing missing packages:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no, non-interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
