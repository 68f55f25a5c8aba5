"""Worker threads must not change the output: for -t 1, 2 and 4 the
multiset of output lines, stats line aside, is identical (records and flow
records alike; only their order may differ)."""
from collections import Counter

import pytest

import dati_helpers as h

CORPUS_SAMPLE = ["ndpi_1kxun.pcap", "ndpi_synscan.pcap", "ndpi_sites.pcapng",
                 "sv_http-protocol-nodup.pcap", "zeek_wikipedia.pcap"]
THREADS = (2, 4)


def diff_lines(a, b, label):
    ca, cb = Counter(a), Counter(b)
    only_a, only_b = ca - cb, cb - ca
    if not only_a and not only_b:
        return
    msg = [f"{label}: {sum(only_a.values())} line(s) only with -t 1, "
           f"{sum(only_b.values())} only with more threads"]
    msg += [f"  -t 1 only: {l[:250]}" for l in list(only_a)[:5]]
    msg += [f"  other only: {l[:250]}" for l in list(only_b)[:5]]
    raise AssertionError("\n".join(msg))


@pytest.mark.parametrize("name", CORPUS_SAMPLE)
def test_threads_corpus(name, corpus_run):
    if not (h.PCAP_DIR / name).exists():
        pytest.skip(h.CORPUS_MISSING)
    one = corpus_run(name, 1).record_lines()
    assert one, f"{name}: no output lines"
    for t in THREADS:
        diff_lines(one, corpus_run(name, t).record_lines(), f"{name} -t {t}")


def test_threads_generated(generated, binaries):
    """Built-in configuration on the generated capture (HTTP, DNS, TLS)."""
    runs = {t: h.run_dati(["-r", generated["path"], "-t", t, "-q"]) for t in (1,) + THREADS}
    one = runs[1].record_lines()
    assert len(one) > 1000
    for t in THREADS:
        diff_lines(one, runs[t].record_lines(), f"generated -t {t}")
        assert runs[t].stats["packets"] == runs[1].stats["packets"]
        assert runs[t].stats["filters"] == runs[1].stats["filters"]


@pytest.mark.parametrize("cpus", (1, 8))
def test_threads_every_reading_mode(generated, binaries, cpus):
    """--cpus chooses how dati reads: with 8 CPUs planned, 3 workers get a
    read-ahead thread and spinning waits; with 1, the reader reads itself and
    waits yield. Neither may change the output; also from a pipe."""
    one = h.run_dati(["-r", generated["path"], "-t", 1, "-q"]).record_lines()
    for args in (["-r", generated["path"]], ["-r", "-"]):
        run = h.run_dati(args + ["-t", 3, "--cpus", cpus, "-q"],
                         stdin_path=generated["path"] if args[1] == "-" else None)
        diff_lines(one, run.record_lines(), f"-t 3 --cpus {cpus} {args[1]}")
