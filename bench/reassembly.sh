#!/bin/bash
# make bench, section 11: REASSEMBLY (doc/reassembly.md).
#   - the lab mix (no fragments) with REASSEMBLY 1 against 0: what the
#     default costs traffic that needs none;
#   - the same mix cut into IP fragments of 512 bytes of payload, shuffled
#     (dati-gen --fragment 512 --frag-order shuffle), with REASSEMBLY 1:
#     what putting fragments back together costs, per fragment;
#   - the all-HTTP file (section 2) with REASSEMBLY 1 against 0, and the
#     same requests each split in two segments (dati-gen --split-at 100):
#     every record then comes from a reassembled request;
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
HTTP_PACKETS=${HTTP_PACKETS:-200000}
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
HTTP_FIELDS="ip.src ip.dst tcp.sport tcp.dport http.method http.url http.host http.useragent http.referer"
for r in 0 1; do
    printf 'TIME_STATS 0\nREASSEMBLY %s\nFILTER_NAME http\nBPF tcp dst port 80\nFIELDS %s\n' "$r" \
        "$HTTP_FIELDS" > "$dir/reasm-http$r.conf"
done
http="$dir/http.pcap"
split="$dir/http-split.pcap"
[ -s "$http" ] || "$gen" -n "$HTTP_PACKETS" -s 2 --http-share 100 -o "$http" 2>/dev/null
[ -s "$split" ] || "$gen" -n "$HTTP_PACKETS" -s 2 --http-share 100 --split-at 100 -o "$split" 2>/dev/null
cat "$http" "$split" > /dev/null
count() { "$dati" -q -c "$1" -r "$2" -w /dev/stdout | grep -c '"http.method"'; }
h0=$(median_time "$dati" -q -c "$dir/reasm-http0.conf" -r "$http" -t 1 -w /dev/null)
h1=$(median_time "$dati" -q -c "$dir/reasm-http1.conf" -r "$http" -t 1 -w /dev/null)
p0=$(median_time "$dati" -q -c "$dir/reasm-http0.conf" -r "$split" -t 1 -w /dev/null)
p1=$(median_time "$dati" -q -c "$dir/reasm-http1.conf" -r "$split" -t 1 -w /dev/null)
p2=$(median_time "$dati" -q -c "$dir/reasm-http1.conf" -r "$split" -t 2 -w /dev/null)
n1=$(count "$dir/reasm-http1.conf" "$split")
n0=$(count "$dir/reasm-http0.conf" "$split")
echo "   all-HTTP file, $HTTP_PACKETS requests (section 2), BPF tcp dst port 80, HTTP fields"
printf "   %-46s %8s s %12s records/s\n" "whole requests, REASSEMBLY 0" "$h0" "$(rate "$HTTP_PACKETS" "$h0")"
printf "   %-46s %8s s %12s records/s\n" "whole requests, REASSEMBLY 1" "$h1" "$(rate "$HTTP_PACKETS" "$h1")"
printf "   %-46s %8s s %12s records/s  (%s whole requests)\n" "each split in 2, REASSEMBLY 1, -t 1" "$p1" "$(rate "$n1" "$p1")" "$n1"
printf "   %-46s %8s s %12s records/s\n" "each split in 2, REASSEMBLY 1, -t 2" "$p2" "$(rate "$n1" "$p2")"
printf "   %-46s %8s s %12s segments/s  (%s records of cut requests)\n" "each split in 2, REASSEMBLY 0" "$p0" "$(rate $((2 * HTTP_PACKETS)) "$p0")" "$n0"
echo "   cost of REASSEMBLY 1 on whole requests: $(awk "BEGIN{printf \"%.0f\", ($h1 / $h0 - 1) * 100}") %"
if [ -s "$dir/flows.pcap" ]; then
    for r in 0 1; do
        printf 'TIME_STATS 0\nPKT_TTL 1000000\nMAX_FLOWS 1000000\nREASSEMBLY %s\nFILTER_NAME tcp\nBPF tcp\n' "$r" > "$dir/reasm-flows$r.conf"
        /usr/bin/time -f "%M" -o "$dir/.peak$r" "$dati" -q -c "$dir/reasm-flows$r.conf" -r "$dir/flows.pcap" -w /dev/null
    done
    echo "   1M concurrent flows, peak resident memory: REASSEMBLY 0 $(( $(tail -1 "$dir/.peak0") / 1024 )) MiB, REASSEMBLY 1 $(( $(tail -1 "$dir/.peak1") / 1024 )) MiB"
fi
