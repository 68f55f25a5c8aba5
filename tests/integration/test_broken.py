"""Broken captures from the corpus (README caveat 9): dati must not crash
(no signal, no sanitizer report), must not take long, must say clearly on
stderr that a damaged file is damaged (exit 1), and must still process the
packets before the damage. Each is run from the file (mmap reader) and from
standard input (libpcap's reader), with 1 and 4 worker threads."""
import pytest

import dati_helpers as h

BOUNDED_SECONDS = 30          # generous for ASan; the files are < 40 KiB

# capture: (damaged file?, packets before the damage or in the file, what is wrong)
BROKEN = {
    "ndpi_fuzz-2021-10-13.pcap": (True, 0, "record caplen 524501 with 199 bytes left"),
    "sv_bug-6875-01-fuzz.pcap": (True, 1, "second record header is garbage"),
    "zeek_trunc_ipv4-truncated-broken-header.pcap": (False, 1, "IPv4 IHL 15, 20 bytes"),
    "ndpi_fuzz-2021-06-07-c6c72a0a56.pcap": (False, 1,
                                             "original length 4093509168, usec out of range"),
    "ndpi_fuzz-2006-09-29-28586.pcap": (False, 131, "fuzzed headers in many packets"),
}

# A reader that tolerates a caplen above the snapshot length (libpcap's)
# may read the captured part of such a record before it stops, as tshark
# does; standard input may go through such a reader. Either count is fine.
TOLERANT_PACKETS = {"ndpi_fuzz-2021-10-13.pcap": 1}


@pytest.mark.parametrize("name", sorted(BROKEN))
@pytest.mark.parametrize("source", ["file", "stdin"])
@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("conf", ["builtin", "oracle"])
def test_broken_capture(name, source, threads, conf, binaries, oracle_conf):
    path = h.PCAP_DIR / name
    if not path.exists():
        pytest.skip(h.CORPUS_MISSING)
    damaged, packets, what = BROKEN[name]
    args = ["-r", "-" if source == "stdin" else path, "-t", threads, "--no-progress"]
    if conf == "oracle":
        args += ["-c", oracle_conf]
    run = h.run_dati(args, timeout=BOUNDED_SECONDS, expect_rc=(0, 1),
                     stdin_path=path if source == "stdin" else None)
    label = f"{name} ({what}; {source}, -t {threads}, {conf} config)"
    s = run.stats
    allowed = {packets, TOLERANT_PACKETS.get(name, packets)}
    assert s["packets"] in allowed, \
        f"{label}: {s['packets']} packets read, expected {' or '.join(map(str, sorted(allowed)))}"
    assert s["packets"] == sum(s["decoded"].values()) + sum(s["malformed"].values()), \
        f"{label}: packets not all accounted for: {s}"
    if damaged:
        assert run.rc == 1, f"{label}: damaged file, exit {run.rc} (expected 1)"
        assert "input_error" in s and s["input_error"], f"{label}: no input_error in stats"
        err = [l for l in run.stderr.splitlines() if "error" in l]
        assert err and any(("-" if source == "stdin" else name) in l for l in err), \
            f"{label}: stderr does not name the damaged input:\n{run.stderr}"
    else:
        assert run.rc == 0, f"{label}: exit {run.rc} for a file that is intact as a file\n" \
                            f"{run.stderr}"
        assert "input_error" not in s, f"{label}: input_error {s['input_error']!r}"


def test_truncated_ip_header_is_malformed(binaries):
    """zeek_trunc: the only frame's IPv4 header claims 60 bytes, 20 exist."""
    path = h.PCAP_DIR / "zeek_trunc_ipv4-truncated-broken-header.pcap"
    if not path.exists():
        pytest.skip(h.CORPUS_MISSING)
    run = h.run_dati(["-r", path, "-q"])
    assert sum(run.stats["malformed"].values()) == 1, run.stats
    assert run.stats["malformed"]["ip_short"] == 1, run.stats["malformed"]
    assert run.records == [] and run.flows == []
