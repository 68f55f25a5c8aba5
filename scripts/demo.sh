#!/bin/sh
# make demo: generates a small lab-mix capture with dati-gen (addresses in
# 198.18.0.0/15 only) and runs dati on it with the built-in filters, JSON
# lines to the terminal.
set -eu
build=${1:-build}
pcap="$build/demo.pcap"
"$build/dati-gen" -n 20000 -s 1 --http-share 3 --dns-share 2 --tls-share 1 \
    --responses --stop-early 20 -o "$pcap" 2>/dev/null
echo "== dati -r $pcap   (built-in filters: http, dns, tls; first records shown)" >&2
"$build/dati" -r "$pcap" --no-progress -w "$build/demo.json"
for t in http dns tls; do
    grep -m 2 "\"filter\":\"$t\"" "$build/demo.json"
done
grep -m 2 '"type":"flow"' "$build/demo.json"
grep '"type":"stats"' "$build/demo.json"
echo "== all $(wc -l < "$build/demo.json") lines are in $build/demo.json" >&2
