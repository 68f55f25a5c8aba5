# bench/common.sh - what the benchmark scripts share (sourced; needs $dir
# and $RUNS): medians of whole-command wall times, rates and ratios.

# median wall time in seconds of RUNS runs of "$@", after one warm-up run
# (the first run after the page cache was filled is often slow here)
median_time() {
    local out="$dir/.time" times=()
    "$@" >/dev/null 2>&1 || true
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f "%e" -o "$out" "$@" >/dev/null 2>&1
        times+=("$(tail -1 "$out")")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'
}
rate() { awk "BEGIN{ if ($2 > 0) printf \"%.0f\", $1 / $2; else print \"inf\" }"; }
ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }"; }
