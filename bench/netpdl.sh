#!/bin/bash
# bench/netpdl.sh BUILD - NetPDL descriptions against the built-in fields,
# same all-HTTP file, same run: field records/s with the HTTP fields from
# dati's parser and from protocols/http.xml, without the regex fields
# (method and url: no pattern field is searched; their ends are one small
# JIT regex each) and with them (host, user agent, referer: PCRE2 JIT
# pattern fields). Called by bench/run.sh; prints figures,
# never passes or fails on speed. Target: description / built-in <= 1.5
# for the fields without regex.
set -euo pipefail
build=${1:-build}
dir="$build/bench"
RUNS=${RUNS:-5}
HTTP_PACKETS=${HTTP_PACKETS:-200000}
mkdir -p "$dir"
dati="$build/dati"
SEED_BPF='tcp[(tcp[12] >> 4) * 4 : 4] = 0x47455420'
protocols=$(cd "$(dirname "$0")/../protocols" && pwd)

# median wall time (s, ms resolution: the runs are short) of RUNS runs after a warm-up
median_time() {
    local times=() s e
    "$@" >/dev/null 2>&1 || true
    for _ in $(seq "$RUNS"); do
        s=$(date +%s%N)
        "$@" >/dev/null 2>&1
        e=$(date +%s%N)
        times+=("$(awk "BEGIN{printf \"%.3f\", ($e - $s) / 1e9}")")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'
}
rate() { awk "BEGIN{ if ($2 > 0) printf \"%.0f\", $1 / $2; else print \"inf\" }"; }
ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }"; }

f="$dir/http.pcap"
[ -s "$f" ] || "$build/dati-gen" -n "$HTTP_PACKETS" -s 2 --http-share 100 -o "$f" 2>/dev/null
cat "$f" > /dev/null

conf() {   # name, PROTOCOL_DEF line or "", fields
    cat > "$dir/netpdl-$1.conf" <<CONF
TIME_STATS 0
FILTER_NAME http
BPF $SEED_BPF
$2
FIELDS ip.src ip.dst tcp.sport tcp.dport $3
CONF
}
plain="http.method http.url"
regex="http.method http.url http.host http.useragent http.referer"
conf base "" ""
conf builtin-plain "" "$plain"
conf pdl-plain "PROTOCOL_DEF $protocols/http.xml" "$plain"
conf builtin-regex "" "$regex"
conf pdl-regex "PROTOCOL_DEF $protocols/http.xml" "$regex"

# the records must be the same before their speed is compared
for k in plain regex; do
    if ! cmp -s <("$dati" -q -c "$dir/netpdl-builtin-$k.conf" -r "$f" | grep '"type":"record"') \
                <("$dati" -q -c "$dir/netpdl-pdl-$k.conf" -r "$f" | grep '"type":"record"'); then
        echo "6. NetPDL: records from http.xml differ from the built-in ones ($k fields): not timed"
        exit 0
    fi
done
records=$("$dati" -q -c "$dir/netpdl-builtin-plain.conf" -r "$f" | grep -c '"type":"record"')
declare -A t
for c in base builtin-plain pdl-plain builtin-regex pdl-regex; do
    t[$c]=$(median_time "$dati" -q -c "$dir/netpdl-$c.conf" -r "$f" -t 1 -w /dev/null)
done
echo "6. NetPDL: all-HTTP file, $HTTP_PACKETS packets, $records records (identical JSON both ways), dati -t 1"
printf "   %-48s %8s s %12s records/s\n" "no HTTP field (ip, ports)" "${t[base]}" "$(rate "$records" "${t[base]}")"
printf "   %-48s %8s s %12s records/s\n" "built-in  method url" "${t[builtin-plain]}" "$(rate "$records" "${t[builtin-plain]}")"
printf "   %-48s %8s s %12s records/s\n" "http.xml  method url (no pattern field)" "${t[pdl-plain]}" "$(rate "$records" "${t[pdl-plain]}")"
printf "   %-48s %8s s %12s records/s\n" "built-in  method url host useragent referer" "${t[builtin-regex]}" "$(rate "$records" "${t[builtin-regex]}")"
printf "   %-48s %8s s %12s records/s\n" "http.xml  same, host/useragent/referer: patterns" "${t[pdl-regex]}" "$(rate "$records" "${t[pdl-regex]}")"
echo "   description / built-in time: $(ratio "${t[pdl-plain]}" "${t[builtin-plain]}")x without regex fields (target <= 1.5x), $(ratio "${t[pdl-regex]}" "${t[builtin-regex]}")x with them"
