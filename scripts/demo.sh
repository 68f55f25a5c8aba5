#!/bin/sh
# make demo: generates a small lab-mix capture with dati-gen (addresses in
# 198.18.0.0/15 only; one minute of traffic, some flows going quiet early so
# that idle expiry shows) and runs dati on it with the built-in filters
# (HTTP requests, DNS queries, TLS server names): JSON lines to the terminal.
set -eu
build=${1:-build}
pcap="$build/demo.pcap"
"$build/dati-gen" -n 3000 -s 1 --rate 50 --http-share 4 --dns-share 3 --tls-share 2 \
    --flows 40 --http-flows 30 --responses --stop-early 30 -o "$pcap" 2>/dev/null
echo "== dati -r $pcap" >&2
"$build/dati" -r "$pcap" --no-progress
