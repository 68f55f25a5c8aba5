#!/bin/sh
# run-unit.sh - runs each unit test program given as an argument, adds up the
# "<prog>: N passed, M failed" lines they print, and ends with one line
# "unit: N passed, M failed". A program that crashes or exits non-zero
# without reporting a failure counts as one failure. Exit status 1 when
# anything failed.
passed=0
failed=0
for t in "$@"; do
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -v -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$|^$'
    line=$(printf '%s\n' "$out" | grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$t: no summary line (exit status $rc)"
        failed=$((failed + 1))
        continue
    fi
    p=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
    f=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$t: exit status $rc without a reported failure"
        f=1
    fi
    [ "$f" -ne 0 ] && echo "$line"
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
