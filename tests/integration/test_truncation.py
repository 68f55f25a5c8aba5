"""A capture cut at an arbitrary byte: dati exits 1, says on stderr what is
damaged and where, and writes every record of every frame wholly before the
cut, exactly as a run on the intact file writes them."""
import struct
from collections import Counter

import pytest

import dati_helpers as h


def pcap_frames_before(data, cut):
    """Records of a classic pcap that end at or before byte `cut`."""
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, n = 24, 0
    while off + 16 <= len(data):
        caplen = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        end = off + 16 + caplen
        if end > cut:
            break
        n += 1
        off = end
    return n


def pcapng_frames_before(data, cut):
    """Packet blocks (EPB, SPB, obsolete PB) of a pcapng that end at or before `cut`."""
    off, n, endian = 0, 0, "<"
    while off + 12 <= len(data):
        if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            endian = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack(endian + "II", data[off:off + 8])
        if off + blen > cut:
            break
        if btype in (2, 3, 6):
            n += 1
        off += blen
    return n


def frames_before(data, cut):
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return pcapng_frames_before(data, cut)
    return pcap_frames_before(data, cut)


def record_lines(run, max_frame=None):
    return Counter(l for l, o in zip(run.lines, run.objs)
                   if o.get("type") == "record" and (max_frame is None or o["frame"] <= max_frame))


def check_cut(source, cut, tmp_path, extra_args=()):
    data = source.read_bytes()
    assert 0 < cut < len(data)
    cut_path = tmp_path / f"cut-{cut}-{source.name}"
    cut_path.write_bytes(data[:cut])
    n = frames_before(data, cut)
    intact = h.run_dati(["-r", source, "-q", *extra_args])
    damaged = h.run_dati(["-r", cut_path, "-q", *extra_args], expect_rc=(0, 1))
    label = f"{source.name} cut at byte {cut} of {len(data)} ({n} whole frames before)"
    assert damaged.rc == 1, f"{label}: exit {damaged.rc}, expected 1\n{damaged.stderr}"
    assert "truncated" in damaged.stderr and str(cut_path) in damaged.stderr, \
        f"{label}: stderr does not say the input is truncated:\n{damaged.stderr}"
    assert damaged.stats.get("input_error"), f"{label}: no input_error in the stats record"
    assert damaged.stats["packets"] == n, \
        f"{label}: dati read {damaged.stats['packets']} packets, {n} frames are whole"
    want, got = record_lines(intact, n), record_lines(damaged)
    missing, extra = want - got, got - want
    assert not missing and not extra, \
        f"{label}: {sum(missing.values())} records of whole frames missing, " \
        f"{sum(extra.values())} records not in the intact run's output; e.g. " \
        f"missing {list(missing)[:2]}, extra {list(extra)[:2]}"
    # Flows end earlier, but none may hold packets the intact run did not see.
    full = {f["flow"]: f for f in intact.flows}
    for f in damaged.flows:
        g = full.get(f["flow"])
        assert g is not None and (g["client"], g["server"]) == (f["client"], f["server"]) \
            and f["c2s_packets"] <= g["c2s_packets"] and f["s2c_packets"] <= g["s2c_packets"], \
            f"{label}: flow {f} does not match the intact run's {g}"


@pytest.mark.parametrize("fraction", [0.7, 0.31])
def test_generated_capture_cut(fraction, generated, tmp_path):
    size = generated["path"].stat().st_size
    check_cut(generated["path"], int(size * fraction), tmp_path)


def test_generated_capture_cut_in_record_header(generated, tmp_path):
    data = generated["path"].read_bytes()
    off = 24
    for _ in range(1000):                       # the 1001st record's header
        off += 16 + struct.unpack("<I", data[off + 8:off + 12])[0]
    check_cut(generated["path"], off + 7, tmp_path)


def test_corpus_pcapng_cut(tmp_path, binaries):
    source = h.PCAP_DIR / "ndpi_sites.pcapng"
    if not source.exists():
        pytest.skip(h.CORPUS_MISSING)
    check_cut(source, int(source.stat().st_size * 0.7), tmp_path)


def test_cut_in_file_header(generated, tmp_path):
    """Damaged input, even with no packet at all: exit 1 and a message."""
    cut_path = tmp_path / "header-cut.pcap"
    cut_path.write_bytes(generated["path"].read_bytes()[:10])
    run = h.run_dati(["-r", cut_path, "-q"], expect_rc=(0, 1, 2))
    assert "truncated" in run.stderr and str(cut_path) in run.stderr, run.stderr
    assert run.rc == 1, f"exit {run.rc} for a capture cut inside its file header; exit 1 is " \
                        f"'damaged input', 2 'usage/config error'\n{run.stderr}"
