#!/bin/sh
# run.sh DATI - configuration checks: every good/*.conf must pass
# `DATI -c F --check` (exit 0); every bad/*.conf must fail it with exit
# status 2 and print, on stderr, each message named by its leading
# "# expect: <file>:<line>: <text>" lines (the file as given to -c: the
# checks run inside bad/, so it is the bare file name). An optional
# "# errors: N" line also requires exactly N "<file>:<line>:" messages.
# A few cases that cannot be files are built on the fly. Ends with one
# line "conf: N passed, M failed"; exit status 1 when anything failed.
dati=$1
case $dati in /*) ;; *) dati=$(pwd)/$dati ;; esac
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "conf: FAILED: $*"
    failed=$((failed + 1))
}

for f in "$here"/good/*.conf; do
    name=${f##*/}
    if (cd "$here/good" && "$dati" -c "$name" --check) >"$tmp/out" 2>&1; then
        passed=$((passed + 1))
    else
        fail "good/$name does not pass --check:"
        sed 's/^/    /' "$tmp/out"
    fi
done

# The commented example shipped in examples/ is a valid file too.
if "$dati" -c "$here/../../examples/dati.conf" --check >"$tmp/out" 2>&1; then
    passed=$((passed + 1))
else
    fail "examples/dati.conf does not pass --check:"
    sed 's/^/    /' "$tmp/out"
fi

# check_bad DIR NAME: runs dati on DIR/NAME and checks its expectations
check_bad() {
    (cd "$1" && "$dati" -c "$2" --check) >"$tmp/stdout" 2>"$tmp/stderr"
    rc=$?
    ok=1
    if [ "$rc" -ne 2 ]; then
        echo "conf: bad/$2: exit status $rc, expected 2"
        ok=0
    fi
    nexpect=0
    while IFS= read -r line; do
        case $line in
        "# expect: "*)
            want=${line#\# expect: }
            nexpect=$((nexpect + 1))
            if ! grep -qF -- "$want" "$tmp/stderr"; then
                echo "conf: bad/$2: missing message: $want"
                ok=0
            fi ;;
        "# errors: "*)
            want=${line#\# errors: }
            got=$(grep -cE "^$2:[0-9]+: " "$tmp/stderr")
            if [ "$got" -ne "$want" ]; then
                echo "conf: bad/$2: $got error messages, expected $want"
                ok=0
            fi ;;
        "#"*) ;;
        *) break ;;
        esac
    done <"$1/$2"
    if [ "$nexpect" -eq 0 ]; then
        echo "conf: bad/$2: no '# expect:' line"
        ok=0
    fi
    if [ "$ok" -eq 1 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "    stderr was:"
        sed 's/^/    /' "$tmp/stderr"
    fi
}

for f in "$here"/bad/*.conf; do
    check_bad "$here/bad" "${f##*/}"
done

# A file of zero bytes: nothing to classify.
: >"$tmp/zero.conf"
printf '# expect: zero.conf:0: no FILTER_NAME\n' >"$tmp/zero.expect"
(cd "$tmp" && "$dati" -c zero.conf --check) >/dev/null 2>"$tmp/stderr"
rc=$?
if [ "$rc" -eq 2 ] && grep -qF "zero.conf:0: no FILTER_NAME" "$tmp/stderr"; then
    passed=$((passed + 1))
else
    fail "an empty file: exit status $rc"
    sed 's/^/    /' "$tmp/stderr"
fi

# A file that does not exist.
(cd "$tmp" && "$dati" -c missing.conf --check) >/dev/null 2>"$tmp/stderr"
rc=$?
if [ "$rc" -eq 2 ] && grep -qF "missing.conf: cannot open" "$tmp/stderr"; then
    passed=$((passed + 1))
else
    fail "a missing file: exit status $rc"
    sed 's/^/    /' "$tmp/stderr"
fi

# The built-in configuration, as --dump-config prints it, is a valid file.
"$dati" --dump-config >"$tmp/builtin.conf"
if "$dati" -c "$tmp/builtin.conf" --check >"$tmp/out" 2>&1 &&
    grep -q ": ok, 3 filters" "$tmp/out"; then
    passed=$((passed + 1))
else
    fail "--dump-config output does not pass --check"
    sed 's/^/    /' "$tmp/out"
fi

echo "conf: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
