#!/bin/sh
# run-replay.sh BUILD - runs each BUILD/tests/replay-fuzz-<name> over
# tests/fuzz/corpus/<name>/ (seeds and regression inputs) and ends with one
# line "fuzz-replay: N inputs, M crashes". When a run fails, each input is
# replayed alone to name the ones that crash. Exit status 1 on any crash.
build=${1:-build}
dir=$(dirname "$0")
inputs=0
crashes=0
for bin in "$build"/tests/replay-fuzz-*; do
    [ -x "$bin" ] || continue
    name=${bin##*/replay-fuzz-}
    corpus=$dir/corpus/$name
    if [ ! -d "$corpus" ]; then
        echo "fuzz-replay: $name: no corpus at $corpus"
        crashes=$((crashes + 1))
        continue
    fi
    n=$(find "$corpus" -type f | wc -l)
    inputs=$((inputs + n))
    if "$bin" "$corpus" >/dev/null 2>&1; then
        continue
    fi
    found=0
    for f in "$corpus"/*; do
        [ -f "$f" ] || continue
        if ! out=$("$bin" "$f" 2>&1); then
            echo "fuzz-replay: $name: crash on $f"
            printf '%s\n' "$out" | grep -E 'ERROR|SUMMARY|runtime error|#[0-9] ' | head -n 12
            found=$((found + 1))
        fi
    done
    [ "$found" -eq 0 ] && found=1 && echo "fuzz-replay: $name: the whole corpus fails, no single input does"
    crashes=$((crashes + found))
done
echo "fuzz-replay: $inputs inputs, $crashes crashes"
[ "$crashes" -eq 0 ]
