#!/bin/bash
# make bench, section 10: CLASSIFY 1 (doc/classification.md).
#   - the lab mix, every flow tracked (BPF ip or ip6, flow records only),
#     with and without CLASSIFY, against ndpiReader on the same file;
#   - the same with the seed's HTTP GET filter (few flows);
#   - peak memory with 1M concurrent flows and CLASSIFY 1.
# Uses the files section 1 and 3 made. Medians of RUNS runs after a
# warm-up (ndpiReader: one run); prints figures, never fails on them.
set -euo pipefail
build=${1:-build}
dir="$build/bench"
dati="$build/dati"
RUNS=${RUNS:-3}
LAB_PACKETS=${LAB_PACKETS:-2000000}
FLOWS=${FLOWS:-1000000}
if ! command -v ndpiReader >/dev/null; then
    echo "10. classification: ndpiReader missing (make deps: libndpi-bin)"
    exit 0
fi
. "$(dirname "$0")/common.sh"

conf() {   # name, classify (0/1), BPF, FIELDS
    printf 'TIME_STATS 0\nCLASSIFY %s\nFILTER_NAME f\nBPF %s\n%s\n' "$2" "$3" "$4" > "$dir/$1"
}
SEED_BPF='tcp[(tcp[12] >> 4) * 4 : 4] = 0x47455420'
SEED_FIELDS='FIELDS ip.src ip.dst tcp.sport tcp.dport http.url http.referer http.host'
# every flow and flow records only: what ndpiReader does
conf all0.conf 0 "ip or ip6" ""
conf all1.conf 1 "ip or ip6" ""
conf seed0.conf 0 "$SEED_BPF" "$SEED_FIELDS"
conf seed1.conf 1 "$SEED_BPF" "$SEED_FIELDS"
lab="$dir/lab.pcap"
named=$("$dati" -q -c "$dir/all1.conf" -r "$lab" -w /dev/stdout | grep '"type":"stats"' |
        sed 's/.*"classify":{"classified":\([0-9]*\),"unknown":\([0-9]*\).*/\1 named, \2 unknown/')
a0=$(median_time "$dati" -q -c "$dir/all0.conf" -r "$lab" -t 1 -w /dev/null)
a1=$(median_time "$dati" -q -c "$dir/all1.conf" -r "$lab" -t 1 -w /dev/null)
a2=$(median_time "$dati" -q -c "$dir/all1.conf" -r "$lab" -t 2 -w /dev/null)
s0=$(median_time "$dati" -q -c "$dir/seed0.conf" -r "$lab" -t 1 -w /dev/null)
s1=$(median_time "$dati" -q -c "$dir/seed1.conf" -r "$lab" -t 1 -w /dev/null)
runs=$RUNS; RUNS=1
nr=$(median_time ndpiReader -q -i "$lab" -v 0)
RUNS=$runs
echo "10. classification (nDPI $(pkg-config --modversion libndpi 2>/dev/null || echo '?')), lab mix, $LAB_PACKETS packets, JSON to /dev/null"
echo "   every flow: BPF ip or ip6, flow records only; seed filter: section 1's filter and fields"
printf "   %-44s %8s s %12s packets/s\n" "dati -t 1, every flow, CLASSIFY 0" "$a0" "$(rate "$LAB_PACKETS" "$a0")"
printf "   %-44s %8s s %12s packets/s  (%s)\n" "dati -t 1, every flow, CLASSIFY 1" "$a1" "$(rate "$LAB_PACKETS" "$a1")" "$named"
printf "   %-44s %8s s %12s packets/s\n" "dati -t 2, every flow, CLASSIFY 1" "$a2" "$(rate "$LAB_PACKETS" "$a2")"
printf "   %-44s %8s s %12s packets/s\n" "ndpiReader -i FILE (one run)" "$nr" "$(rate "$LAB_PACKETS" "$nr")"
printf "   %-44s %8s s %12s packets/s\n" "dati -t 1, seed filter, CLASSIFY 0" "$s0" "$(rate "$LAB_PACKETS" "$s0")"
printf "   %-44s %8s s %12s packets/s\n" "dati -t 1, seed filter, CLASSIFY 1" "$s1" "$(rate "$LAB_PACKETS" "$s1")"
echo "   cost of CLASSIFY, every flow: $(awk "BEGIN{printf \"%.0f\", ($a1 / $a0 - 1) * 100}") %, seed filter: $(awk "BEGIN{printf \"%.0f\", ($s1 / $s0 - 1) * 100}") %   (target: <= 25 %)"
echo "   dati -t 1 CLASSIFY 1 / ndpiReader: $(ratio "$nr" "$a1")x, -t 2: $(ratio "$nr" "$a2")x   (target: >= 10x)"

# 1M concurrent flows, every one classified or refused by the pool
cat > "$dir/flows-classify.conf" <<CONF
TIME_STATS 0
PKT_TTL 1000000
MAX_FLOWS $FLOWS
CLASSIFY 1
FILTER_NAME tcp
BPF tcp
CONF
stats=$(/usr/bin/time -f "%M" -o "$dir/.peak" "$dati" -c "$dir/flows-classify.conf" -r "$dir/flows.pcap" -w /dev/stdout -q | grep '"type":"stats"')
peak_kb=$(tail -1 "$dir/.peak")
created=$(echo "$stats" | sed 's/.*"created":\([0-9]*\).*/\1/')
cl=$(echo "$stats" | sed 's/.*"classify":{"classified":\([0-9]*\),"unknown":\([0-9]*\),"pool_full":\([0-9]*\).*/\1 named, \2 unknown, \3 refused by the pool/')
echo "   $created concurrent flows with CLASSIFY 1 (CLASSIFY_MAX_FLOWS 16384, the default): $cl"
echo "   peak resident memory of the process: $((peak_kb / 1024)) MiB (target: <= 256 MiB)"
