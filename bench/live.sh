#!/bin/bash
# make bench, section 5: live capture on a veth pair inside a network
# namespace of its own (created and removed here; traffic from dati-gen,
# 198.18.0.0/15 only). For each tcpreplay rate: dati -i (2 workers, the
# seed's HTTP GET filter, flows, JSON to /dev/null) and `tcpdump -i` with
# the same filter and the same buffer memory, one after the other; kernel
# drops of each, and dati's CPU time per packet. Then, at equal ring memory
# (1 MiB: dati -t 2 with 4 blocks of 128 KiB per worker, tcpdump -B 1024
# with no filter, so that it too takes every packet into user space), the
# top-speed replay EQUAL_RUNS times each: drops per run. Needs root.
set -euo pipefail
build=${1:-build}
dir="$build/bench"
dati="$build/dati"
LIVE_PACKETS=${LIVE_PACKETS:-300000}
RATES=${RATES:-"100000 200000 400000 800000 topspeed"}
SEED_BPF='tcp[(tcp[12] >> 4) * 4 : 4] = 0x47455420'
if [ "$(id -u)" != 0 ] || ! command -v tcpreplay >/dev/null; then
    echo "5. live capture: needs root and tcpreplay (make deps); skipped"
    exit 0
fi
mkdir -p "$dir"
ns="dati-bench-$$"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
in_ns ip link add s0 mtu 9000 type veth peer name c0 mtu 9000
in_ns ip link set s0 up
in_ns ip link set c0 up
pcap="$dir/live-$LIVE_PACKETS.pcap"
[ -s "$pcap" ] || "$build/dati-gen" -n "$LIVE_PACKETS" -o "$pcap" 2>/dev/null
# RING_MIB: ring memory per worker, in blocks of 128 KiB;
# tcpdump gets as much in all (-B) as dati's two workers together
RING_MIB=${RING_MIB:-32}   # 32 MiB: as much as dati's default (128 blocks of 256 KiB)
printf 'RING_BLOCK_SIZE 131072\nRING_BLOCKS %s\nFILTER_NAME http_GET\nBPF %s\nFIELDS ip.src ip.dst tcp.sport tcp.dport http.url http.host\n' \
    "$(( RING_MIB * 8 ))" "$SEED_BPF" > "$dir/live.conf"
ring_kib=$(( 2 * RING_MIB * 1024 ))

replay() {   # rate -> achieved packets/s
    local how=(--pps "$1")
    [ "$1" = topspeed ] && how=(--topspeed)
    in_ns tcpreplay -q -K -i s0 "${how[@]}" "$pcap" 2>&1 |
        sed -n 's/.*Rated: .* \([0-9.]*\) pps.*/\1/p' | head -1 | cut -d. -f1
}

cpu_ns() {   # CPU time of all of a process's threads, ns (schedstat)
    cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'
}

wait_for() {   # file, text
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    return 1
}

echo "5. live capture, veth pair, $LIVE_PACKETS packets of the lab mix per run (seed HTTP GET filter)"
echo "   buffers: dati 2 x $RING_MIB MiB of rings (blocks of 128 KiB), tcpdump -B $ring_kib KiB"
printf "   %-12s %-12s | %-30s | %-22s\n" "asked pps" "sent pps" "dati -i c0 -t 2: kernel drops" "tcpdump -i: drops"
best_dati=0 best_tcpdump=0 nspp="-"
for rate in $RATES; do
    # dati
    rm -f "$dir/live.err"
    ip netns exec "$ns" "$dati" -v -c "$dir/live.conf" -i c0 -t 2 -w "$dir/live.json" -p "$dir/live.pid" \
        2> "$dir/live.err" &
    tpid=$!
    wait_for "$dir/live.err" "capturing on" || { echo "dati did not start"; cat "$dir/live.err"; exit 1; }
    cpu0=$(cpu_ns "$(cat "$dir/live.pid")")
    sent=$(replay "$rate")
    sleep 0.5
    cpu1=$(cpu_ns "$(cat "$dir/live.pid")")
    kill -TERM "$(cat "$dir/live.pid")"
    wait "$tpid" || true
    stats=$(grep '"type":"stats"' "$dir/live.json" | tail -1)
    drops=$(sed 's/.*"kernel_drops":\([0-9]*\).*/\1/' <<< "$stats")
    got=$(sed 's/.*"packets":\([0-9]*\).*/\1/' <<< "$stats")
    # tcpdump, same filter, same buffer memory
    ip netns exec "$ns" tcpdump -i c0 -n -B "$ring_kib" -w /dev/null "$SEED_BPF" 2> "$dir/tcpdump.err" &
    dpid=$!
    wait_for "$dir/tcpdump.err" "listening" || true
    replay "$rate" > /dev/null
    sleep 0.5
    kill -INT "$dpid" 2>/dev/null || true
    wait "$dpid" || true
    tdrops=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$dir/tcpdump.err")
    printf "   %-12s %-12s | %-30s | %-22s\n" "$rate" "$sent" "$drops (of $got captured)" "$tdrops"
    [ "$drops" = 0 ] && [ "$got" -ge "$LIVE_PACKETS" ] && best_dati=$sent &&
        nspp=$(awk "BEGIN{printf \"%.0f\", ($cpu1 - $cpu0) / $got}")
    [ "$tdrops" = 0 ] && best_tcpdump=$sent
done
echo "   highest rate without loss: dati $best_dati pps, tcpdump $best_tcpdump pps"
echo "   dati CPU time per packet at that rate (all threads, from the replay's start to 0.5 s after its end): $nspp ns"

# equal ring memory, every packet into user space, top speed
EQUAL_RUNS=${EQUAL_RUNS:-10}
[ "$EQUAL_RUNS" -gt 0 ] || exit 0
printf 'RING_BLOCK_SIZE 131072\nRING_BLOCKS 4\nFILTER_NAME http_GET\nBPF %s\nFIELDS ip.src ip.dst tcp.sport tcp.dport http.url http.host\n' \
    "$SEED_BPF" > "$dir/live-1m.conf"
dati_drops=() tcpdump_drops=()
for _ in $(seq "$EQUAL_RUNS"); do
    rm -f "$dir/live.err"
    ip netns exec "$ns" "$dati" -v -c "$dir/live-1m.conf" -i c0 -t 2 -w "$dir/live.json" -p "$dir/live.pid" \
        2> "$dir/live.err" &
    tpid=$!
    wait_for "$dir/live.err" "capturing on" || { echo "dati did not start"; cat "$dir/live.err"; exit 1; }
    replay topspeed > /dev/null
    sleep 0.5
    kill -TERM "$(cat "$dir/live.pid")"
    wait "$tpid" || true
    dati_drops+=("$(grep '"type":"stats"' "$dir/live.json" | tail -1 | sed 's/.*"kernel_drops":\([0-9]*\).*/\1/')")
    ip netns exec "$ns" tcpdump -i c0 -n -B 1024 -w /dev/null 2> "$dir/tcpdump.err" &
    dpid=$!
    wait_for "$dir/tcpdump.err" "listening" || true
    replay topspeed > /dev/null
    sleep 0.5
    kill -INT "$dpid" 2>/dev/null || true
    wait "$dpid" || true
    tcpdump_drops+=("$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$dir/tcpdump.err")")
done
lossless() { local n=0; for d in "$@"; do [ "$d" = 0 ] && n=$((n + 1)); done; echo "$n"; }
echo "   equal ring memory (1 MiB), top speed, $EQUAL_RUNS runs each, kernel drops per run:"
echo "     dati -t 2, 2 x 4 blocks of 128 KiB:     ${dati_drops[*]}  ($(lossless "${dati_drops[@]}") of $EQUAL_RUNS without loss)"
echo "     tcpdump -B 1024, no filter, -w /dev/null: ${tcpdump_drops[*]}  ($(lossless "${tcpdump_drops[@]}") of $EQUAL_RUNS without loss)"
