#!/bin/bash
# make bench, section 11: REASSEMBLY (doc/reassembly.md).
#   - the lab mix (no fragments) with REASSEMBLY 1 against 0: what the
#     default costs traffic that needs none;
#   - the same mix cut into IP fragments of 512 bytes of payload, shuffled
#     (dati-gen --fragment 512 --frag-order shuffle), with REASSEMBLY 1:
#     what putting fragments back together costs, per fragment;
#   - peak memory with 1M flows, REASSEMBLY 1 against 0.
# Uses the files sections 1 and 3 made. Medians of RUNS runs after a
# warm-up; prints figures, never fails on them.
set -euo pipefail
build=${1:-build}
dir="$build/bench"
dati="$build/dati"
gen="$build/dati-gen"
RUNS=${RUNS:-3}
LAB_PACKETS=${LAB_PACKETS:-2000000}
. "$(dirname "$0")/common.sh"

SEED_BPF='tcp[(tcp[12] >> 4) * 4 : 4] = 0x47455420'
for r in 0 1; do
    printf 'TIME_STATS 0\nREASSEMBLY %s\nFILTER_NAME http\nBPF %s\nFIELDS %s\n' "$r" \
        "$SEED_BPF" "ip.src ip.dst tcp.sport tcp.dport http.url http.referer http.host" \
        > "$dir/reasm$r.conf"
    printf 'TIME_STATS 0\nREASSEMBLY %s\nFILTER_NAME all\nBPF ip or ip6\n' "$r" \
        > "$dir/reasm-all$r.conf"
done
lab="$dir/lab.pcap"
cut="$dir/lab-fragments.pcap"
[ -s "$cut" ] || "$gen" -n "$LAB_PACKETS" -s 1 --fragment 512 --frag-order shuffle -o "$cut" 2>/dev/null
cat "$cut" > /dev/null
frames=$("$dati" -q -c "$dir/reasm-all1.conf" -r "$cut" -w /dev/stdout | grep '"type":"stats"' |
         sed 's/.*"packets":\([0-9]*\).*"defrag":{"fragments":\([0-9]*\),"datagrams":\([0-9]*\).*/\1 \2 \3/')
read -r nframes nfrags ndgrams <<< "$frames"
s0=$(median_time "$dati" -q -c "$dir/reasm0.conf" -r "$lab" -t 1 -w /dev/null)
s1=$(median_time "$dati" -q -c "$dir/reasm1.conf" -r "$lab" -t 1 -w /dev/null)
a0=$(median_time "$dati" -q -c "$dir/reasm-all0.conf" -r "$lab" -t 1 -w /dev/null)
a1=$(median_time "$dati" -q -c "$dir/reasm-all1.conf" -r "$lab" -t 1 -w /dev/null)
c1=$(median_time "$dati" -q -c "$dir/reasm-all1.conf" -r "$cut" -t 1 -w /dev/null)
c2=$(median_time "$dati" -q -c "$dir/reasm-all1.conf" -r "$cut" -t 2 -w /dev/null)
c0=$(median_time "$dati" -q -c "$dir/reasm-all0.conf" -r "$cut" -t 1 -w /dev/null)
echo "11. reassembly, lab mix, $LAB_PACKETS packets, JSON to /dev/null"
printf "   %-46s %8s s %12s packets/s\n" "seed filter, REASSEMBLY 0" "$s0" "$(rate "$LAB_PACKETS" "$s0")"
printf "   %-46s %8s s %12s packets/s\n" "seed filter, REASSEMBLY 1" "$s1" "$(rate "$LAB_PACKETS" "$s1")"
printf "   %-46s %8s s %12s packets/s\n" "every flow (BPF ip or ip6), REASSEMBLY 0" "$a0" "$(rate "$LAB_PACKETS" "$a0")"
printf "   %-46s %8s s %12s packets/s\n" "every flow (BPF ip or ip6), REASSEMBLY 1" "$a1" "$(rate "$LAB_PACKETS" "$a1")"
echo "   cost of REASSEMBLY 1 on traffic without fragments: seed filter $(awk "BEGIN{printf \"%.0f\", ($s1 / $s0 - 1) * 100}") %, every flow $(awk "BEGIN{printf \"%.0f\", ($a1 / $a0 - 1) * 100}") %   (target: <= 10 %)"
echo "   the same mix in fragments of 512 bytes, shuffled: $nframes frames, $nfrags fragments -> $ndgrams datagrams"
printf "   %-46s %8s s %12s frames/s\n" "every flow, REASSEMBLY 1, -t 1" "$c1" "$(rate "$nframes" "$c1")"
printf "   %-46s %8s s %12s frames/s\n" "every flow, REASSEMBLY 1, -t 2" "$c2" "$(rate "$nframes" "$c2")"
printf "   %-46s %8s s %12s frames/s  (later fragments: no flow)\n" "every flow, REASSEMBLY 0, -t 1" "$c0" "$(rate "$nframes" "$c0")"
if [ -s "$dir/flows.pcap" ]; then
    for r in 0 1; do
        printf 'TIME_STATS 0\nPKT_TTL 1000000\nMAX_FLOWS 1000000\nREASSEMBLY %s\nFILTER_NAME tcp\nBPF tcp\n' "$r" > "$dir/reasm-flows$r.conf"
        /usr/bin/time -f "%M" -o "$dir/.peak$r" "$dati" -q -c "$dir/reasm-flows$r.conf" -r "$dir/flows.pcap" -w /dev/null
    done
    echo "   1M concurrent flows, peak resident memory: REASSEMBLY 0 $(( $(tail -1 "$dir/.peak0") / 1024 )) MiB, REASSEMBLY 1 $(( $(tail -1 "$dir/.peak1") / 1024 )) MiB"
fi
