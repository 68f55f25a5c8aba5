#!/bin/bash
# make bench, section 8: IPFIX export (doc/ipfix.md) to nfcapd on loopback.
#   - flow records/s exported over UDP: the 1M-flow file, IPFIX alone,
#     and how many of them nfcapd wrote (UDP on loopback may drop);
#   - the lab mix with and without export, side by side (the cost of it);
#   - softflowd exporting IPFIX from the same files, for comparison.
# Medians of RUNS runs after a warm-up; prints figures, never fails on them.
set -euo pipefail
build=${1:-build}
dir="$build/bench"
dati="$build/dati"
RUNS=${RUNS:-3}
if ! command -v nfcapd >/dev/null || ! command -v softflowd >/dev/null; then
    echo "8. IPFIX: nfcapd or softflowd missing (make deps)"
    exit 0
fi
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
. "$(dirname "$0")/common.sh"
# nfcapd into a fresh directory; prints the flows it wrote when stopped
nf_start() { rm -rf "$dir/nf"; mkdir -p "$dir/nf"; nfcapd -b 127.0.0.1 -p "$port" -w "$dir/nf" -t 3600 -B 8000000 >"$dir/nf.log" 2>&1 & nf_pid=$!; sleep 0.3; }
nf_stop() { kill "$nf_pid"; wait "$nf_pid" || true; sed -n "s/.*Flows: \([0-9]*\),.*/\1/p" "$dir/nf.log" | tail -1; }

cat > "$dir/ipfix.conf" <<CONF
TIME_STATS 0
PKT_TTL 1000000
MAX_FLOWS 1000000
OUTPUT none
IPFIX_COLLECTOR 127.0.0.1:$port
FILTER_NAME tcp
BPF tcp
CONF
nf_start
t_ipfix=$(median_time "$dati" -q -c "$dir/ipfix.conf" -r "$dir/flows.pcap")
stats=$("$dati" -q -c "$dir/ipfix.conf" -r "$dir/flows.pcap" | grep '"type":"stats"')
sent=$(echo "$stats" | sed 's/.*"ipfix":{"records":\([0-9]*\).*/\1/')
got=$(nf_stop)
runs=$((RUNS + 2))   # the warm-up, the timed runs and the counted one went to nfcapd
nf_start
t_soft=$(median_time softflowd -r "$dir/flows.pcap" -n "127.0.0.1:$port" -v 10 -d -m 1100000)
nf_stop >/dev/null
echo "8. IPFIX export over UDP to nfcapd on loopback"
printf "   %-40s %8s s %12s flow records/s  (%s records in the last run; nfcapd wrote %s of %s sent in %s runs)\n" \
    "dati, $sent flows, IPFIX alone" "$t_ipfix" "$(rate "$sent" "$t_ipfix")" "$sent" "$got" "$((sent * runs))" "$runs"
printf "   %-40s %8s s %12s flow records/s\n" "softflowd -r FILE -v 10, same file" "$t_soft" "$(rate "$sent" "$t_soft")"

sed "s|^TIME_STATS 0|TIME_STATS 0\nIPFIX_COLLECTOR 127.0.0.1:$port|" "$dir/seed.conf" > "$dir/seed-ipfix.conf"
nf_start
t_plain=$(median_time "$dati" -q -c "$dir/seed.conf" -r "$dir/lab.pcap" -t 1 -w /dev/null)
t_export=$(median_time "$dati" -q -c "$dir/seed-ipfix.conf" -r "$dir/lab.pcap" -t 1 -w /dev/null)
t_softlab=$(median_time softflowd -r "$dir/lab.pcap" -n "127.0.0.1:$port" -v 10 -d)
nf_stop >/dev/null
echo "   lab mix, seed filter, JSON to /dev/null, -t 1:"
printf "   %-40s %8s s\n" "without IPFIX" "$t_plain" "with IPFIX to nfcapd" "$t_export" "softflowd -r FILE -v 10" "$t_softlab"
echo "   cost of the export: $(awk "BEGIN{ if ($t_plain > 0) printf \"%+.1f\", 100 * ($t_export - $t_plain) / $t_plain; else print \"-\" }") % (target: <= 5 %)"
