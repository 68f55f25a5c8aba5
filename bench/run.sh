#!/bin/bash
# make bench: dati against its peers on files made by dati-gen, measured side
# by side in one run. Prints figures; never passes or fails on speed.
#   1. lab mix (2M packets), seed HTTP GET filter + flows + JSON to /dev/null:
#      dati -t 1 / -t 2 against `tcpdump -r FILE -w /dev/null FILTER`, and
#      `cat FILE > /dev/null`, the floor of reading the file at all
#   2. all-HTTP file: field records/s against tshark -T fields
#   3. 1M concurrent flows: anonymous memory and bytes per flow
#   4. records into Redis against redis-benchmark's ceiling
#   5. live capture (bench/live.sh, as root): lossless rates, dati vs tcpdump; drops
#      at equal ring memory against tcpdump taking every packet, 10 runs
#   6. NetPDL descriptions (bench/netpdl.sh): http.xml against the built-in fields
#   7. feedback channel: tag latency, commands/s absorbed (bench/feedback.py)
#   8. IPFIX export to nfcapd: flow records/s, cost on the lab mix, softflowd (bench/ipfix.sh)
#   9. Redis Cluster (3 masters): records/s in both layouts against redis-benchmark
#      --cluster's ceiling, and dati's CPU per record with 1 and 3 masters (bench/cluster.py)
#  10. CLASSIFY 1 on the lab mix against without and against ndpiReader; 1M flows' peak
#      memory with it (bench/classify.sh)
#  11. REASSEMBLY 1 against 0 on the lab mix, the mix cut into IP fragments, 1M flows'
#      peak memory (bench/reassembly.sh)
# Each timing is the median of RUNS runs (wall clock) after a warm-up run,
# files in page cache.
set -euo pipefail
build=${1:-build}
dir="$build/bench"
RUNS=${RUNS:-3}
LAB_PACKETS=${LAB_PACKETS:-2000000}
HTTP_PACKETS=${HTTP_PACKETS:-200000}
FLOWS=${FLOWS:-1000000}
mkdir -p "$dir"
dati="$build/dati"
gen="$build/dati-gen"
SEED_BPF='tcp[(tcp[12] >> 4) * 4 : 4] = 0x47455420'

. "$(dirname "$0")/common.sh"

make_file() {   # name, dati-gen args...
    local f="$dir/$1"; shift
    [ -s "$f" ] || "$gen" "$@" -o "$f" 2>/dev/null
    cat "$f" > /dev/null   # into the page cache
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "tools: $(tcpdump --version 2>&1 | head -1), $(tshark --version 2>/dev/null | head -1)"
echo

# 1. lab mix
make_file lab.pcap -n "$LAB_PACKETS" -s 1
cat > "$dir/seed.conf" <<CONF
TIME_STATS 0
FILTER_NAME http
BPF $SEED_BPF
FIELDS ip.src ip.dst tcp.sport tcp.dport http.url http.referer http.host
CONF
t1=$(median_time "$dati" -q -c "$dir/seed.conf" -r "$dir/lab.pcap" -t 1 -w /dev/null)
t2=$(median_time "$dati" -q -c "$dir/seed.conf" -r "$dir/lab.pcap" -t 2 -w /dev/null)
td=$(median_time tcpdump -r "$dir/lab.pcap" -w /dev/null "$SEED_BPF")
tc=$(median_time sh -c "cat '$dir/lab.pcap' > /dev/null")
echo "1. lab mix, $LAB_PACKETS packets ($(du -m "$dir/lab.pcap" | cut -f1) MB), seed HTTP GET filter, flows, JSON to /dev/null"
printf "   %-34s %8s s %12s packets/s\n" "dati -t 1 (the default)" "$t1" "$(rate "$LAB_PACKETS" "$t1")"
printf "   %-34s %8s s %12s packets/s\n" "dati -t 2" "$t2" "$(rate "$LAB_PACKETS" "$t2")"
printf "   %-34s %8s s %12s packets/s\n" "tcpdump -r FILE -w /dev/null" "$td" "$(rate "$LAB_PACKETS" "$td")"
printf "   %-34s %8s s %12s packets/s\n" "cat FILE > /dev/null (the floor)" "$tc" "$(rate "$LAB_PACKETS" "$tc")"
echo "   dati -t 1 / tcpdump: $(ratio "$td" "$t1")x    dati -t 2 / tcpdump: $(ratio "$td" "$t2")x   (target for the better: >= 3x)"
echo "   dati -t 1 at $(awk "BEGIN{printf \"%.0f\", 100 * $tc / $t1}") % of cat's throughput, -t 2 at $(awk "BEGIN{printf \"%.0f\", 100 * $tc / $t2}") %   (target: >= 60 %)"
echo

# 2. all-HTTP
make_file http.pcap -n "$HTTP_PACKETS" -s 2 --http-share 100
cat > "$dir/http.conf" <<CONF
TIME_STATS 0
FILTER_NAME http
BPF $SEED_BPF
FIELDS ip.src ip.dst tcp.sport tcp.dport http.method http.url http.host http.useragent http.referer
CONF
records=$("$dati" -q -c "$dir/http.conf" -r "$dir/http.pcap" | grep -c '"type":"record"')
th=$(median_time "$dati" -q -c "$dir/http.conf" -r "$dir/http.pcap" -t 1 -w /dev/null)
ts_runs=$RUNS; RUNS=1
tt=$(median_time tshark -n -r "$dir/http.pcap" -Y http.request -T fields -e ip.src -e ip.dst \
    -e tcp.srcport -e tcp.dstport -e http.request.method -e http.request.uri -e http.host \
    -e http.user_agent -e http.referer)
RUNS=$ts_runs
tshark_records=$(tshark -n -r "$dir/http.pcap" -Y http.request -T fields -e http.host 2>/dev/null | wc -l)
echo "2. all-HTTP file, $HTTP_PACKETS packets: field records to JSON"
printf "   %-34s %8s s %12s records/s  (%s records)\n" "dati -t 1" "$th" "$(rate "$records" "$th")" "$records"
printf "   %-34s %8s s %12s records/s  (%s records)\n" "tshark -Y http.request -T fields" "$tt" "$(rate "$tshark_records" "$tt")" "$tshark_records"
echo "   dati / tshark: $(ratio "$tt" "$th")x   (target: >= 50x)"
echo

# 3. one million concurrent flows
make_file flows.pcap -n "$FLOWS" -s 3 --flows "$FLOWS" --round-robin --frame-size 64 --http-share 0
cat > "$dir/flows.conf" <<CONF
TIME_STATS 0
PKT_TTL 1000000
MAX_FLOWS $FLOWS
FILTER_NAME tcp
BPF tcp
CONF
stats=$(/usr/bin/time -f "%M" -o "$dir/.peak" "$dati" -c "$dir/flows.conf" -r "$dir/flows.pcap" -w /dev/stdout -q | grep '"type":"stats"')
peak_kb=$(tail -1 "$dir/.peak")
created=$(echo "$stats" | sed 's/.*"created":\([0-9]*\).*/\1/')
anon=$(echo "$stats" | sed 's/.*"rss_anon_kb":\([0-9]*\).*/\1/')
entry=$(echo "$stats" | sed 's/.*"flow_entry_bytes":\([0-9]*\).*/\1/')
make_file tiny.pcap -n 10 -s 3 --http-share 0
base=$("$dati" -c "$dir/flows.conf" -r "$dir/tiny.pcap" -w /dev/stdout -q | grep '"type":"stats"' | sed 's/.*"rss_anon_kb":\([0-9]*\).*/\1/')
echo "3. $created concurrent flows (all live at the end of the file)"
echo "   peak resident memory of the process: $((peak_kb / 1024)) MiB (target: <= 256 MiB)"
echo "   anonymous resident memory at the end: $((anon / 1024)) MiB"
echo "   flow entry: $entry bytes + 16 bytes of index (two 8-byte slots of 64-byte buckets per flow); measured $(( (anon - ${base:-0}) * 1024 / (created > 0 ? created : 1) )) bytes per flow in all"
echo

# 4. records into Redis (seed layout) against redis-benchmark's ceiling
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    sock="$dir/redis.sock"
    redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
    sed "s|^TIME_STATS 0|TIME_STATS 0\nREDIS_SOCK $sock|" "$dir/http.conf" > "$dir/redis.conf"
    tr=$(median_time sh -c "redis-cli -s $sock flushall >/dev/null && exec $dati -q -c $dir/redis.conf -r $dir/http.pcap -t 1 -w /dev/null")
    lost=$("$dati" -q -c "$dir/redis.conf" -r "$dir/http.pcap" | grep '"type":"stats"' | sed 's/.*"redis":{[^}]*"lost":\([0-9]*\).*/\1/')
    # the same command mix, one command kind at a time, pipelined by 50
    rps() { redis-benchmark -s "$sock" -P 50 -n 200000 -r 1000000 -q "$@" 2>/dev/null | tr '\r' '\n' |
            grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1; }
    hset=$(rps hset dati:rec:__rand_int__ Timestamp 1700000000.000000000 filter http flow 123456 \
        ip.src 198.18.1.2 ip.dst 198.19.0.1 tcp.sport 12345 tcp.dport 80 http.method GET \
        http.url /index.html http.host www.example.test \
        http.useragent 'Mozilla/5.0 (X11; Linux x86_64) dati-gen/1' http.referer http://www.example.test/)
    expire=$(rps expire dati:rec:__rand_int__ 300)
    publish=$(rps publish http dati:rec:__rand_int__)
    ceiling=$(awk "BEGIN{printf \"%.0f\", 1 / (1/$hset + 1/$expire + 1/$publish)}")
    # stream mode against XADD with the same fields
    sed "s|^TIME_STATS 0|TIME_STATS 0\nREDIS_MODE stream\nREDIS_MAXLEN 100000|" "$dir/redis.conf" > "$dir/stream.conf"
    ts=$(median_time sh -c "redis-cli -s $sock flushall >/dev/null && exec $dati -q -c $dir/stream.conf -r $dir/http.pcap -t 1 -w /dev/null")
    xadd=$(rps xadd http MAXLEN '~' 100000 '*' Timestamp 1700000000.000000000 filter http flow 123456 \
        ip.src 198.18.1.2 ip.dst 198.19.0.1 tcp.sport 12345 tcp.dport 80 http.method GET \
        http.url /index.html http.host www.example.test \
        http.useragent 'Mozilla/5.0 (X11; Linux x86_64) dati-gen/1' http.referer http://www.example.test/)
    kill "$(cat "$dir/redis.pid")"
    echo "4. all-HTTP file into Redis over a unix socket, seed layout (HSET + EXPIRE + PUBLISH, ids by INCRBY)"
    printf "   %-34s %8s s %12s records/s  (%s lost)\n" "dati -t 1" "$tr" "$(rate "$records" "$tr")" "$lost"
    echo "   redis-benchmark -P 50, same commands: HSET $hset/s, EXPIRE $expire/s, PUBLISH $publish/s"
    echo "   ceiling for the mix: $ceiling records/s; dati reaches $(awk "BEGIN{printf \"%.0f\", 100 * $(rate "$records" "$tr") / $ceiling}") % of it (target: >= 70 %)"
    printf "   %-34s %8s s %12s records/s\n" "dati -t 1, REDIS_MODE stream" "$ts" "$(rate "$records" "$ts")"
    echo "   redis-benchmark -P 50 XADD, same fields: $xadd/s; dati reaches $(awk "BEGIN{printf \"%.0f\", 100 * $(rate "$records" "$ts") / $xadd}") % of it (target: >= 70 %)"
else
    echo "4. Redis: redis-server or redis-benchmark missing (make deps)"
fi

# 5. live capture: default rings, then small ones, where the consumer's speed shows
bash "$(dirname "$0")/live.sh" "$build"
RING_MIB=2 RATES=topspeed EQUAL_RUNS=0 bash "$(dirname "$0")/live.sh" "$build" | tail -n +2

# 6. NetPDL descriptions against the built-in fields (bench/netpdl.sh)
echo
"$(dirname "$0")/netpdl.sh" "$build"
echo

# 7. feedback channel: tag latency and commands absorbed (bench/feedback.py)
if command -v redis-server >/dev/null && /usr/bin/python3 -c 'import redis' 2>/dev/null; then
    /usr/bin/python3 "$(dirname "$0")/feedback.py" "$build" "$dir" "$dir/lab.pcap"
else
    echo "7. feedback channel: redis-server or python3-redis missing (make deps)"
fi

# 8. IPFIX export to nfcapd on loopback (bench/ipfix.sh)
echo
bash "$(dirname "$0")/ipfix.sh" "$build"

# 9. Redis Cluster on loopback (bench/cluster.py)
echo
if command -v redis-server >/dev/null && /usr/bin/python3 -c 'import redis.cluster' 2>/dev/null; then
    /usr/bin/python3 "$(dirname "$0")/cluster.py" "$build" "$dir" "$dir/http.pcap" "$dir/http.conf"
else
    echo "9. Redis Cluster: redis-server or python3-redis missing (make deps)"
fi

# 10. application classification (bench/classify.sh)
echo
bash "$(dirname "$0")/classify.sh" "$build"

# 11. reassembly (bench/reassembly.sh)
echo
bash "$(dirname "$0")/reassembly.sh" "$build"
