"""A full flow table, output that cannot be written, and periodic statistics:
each must give an exact count or a clear error, never a silent loss."""
import os

import pytest

import dati_helpers as h


def test_full_table_evicts_and_accounts_every_packet(tmp_path, binaries):
    # 500 flows visited in turn through a table of 50: most flows are evicted
    # several times; every packet still lands in exactly one flow record.
    pcap = tmp_path / "flows.pcap"
    summary = h.run_gen(["-n", 5000, "--flows", 500, "--round-robin", "--frame-size", 100,
                         "--http-share", 0], pcap)
    conf = h.write_config(tmp_path, "small.conf",
                          "TIME_STATS 0\nPKT_TTL 1000\nMAX_FLOWS 50\nFILTER_NAME tcp\nBPF tcp\n")
    for threads in (1, 2):
        run = h.run_dati(["-r", pcap, "-c", conf, "-t", threads, "-q"])
        flows = run.stats["flows"]
        assert flows["evicted"] > 4000, flows
        assert flows["created"] == len(run.flows) == flows["evicted"] + flows["end_of_input"]
        assert flows["end_of_input"] <= 50 + threads
        assert sum(f["c2s_packets"] + f["s2c_packets"] for f in run.flows) == summary["packets"]
        assert {f["reason"] for f in run.flows} == {"evicted", "end_of_input"}


def test_unwritable_output_is_an_error(tmp_path, binaries, generated):
    run = h.run_dati(["-r", generated["path"], "-w", tmp_path / "no" / "such" / "dir.json"],
                     expect_rc=(2,), parse=False)
    assert "cannot open" in run.stderr and "No such file or directory" in run.stderr


def test_full_disk_is_reported(binaries, generated):
    run = h.run_dati(["-r", generated["path"], "-w", "/dev/full", "-q"], expect_rc=(1,),
                     parse=False)
    assert "No space left on device" in run.stderr


def test_periodic_statistics(tmp_path, binaries):
    # TIME_STATS 1 on an input that arrives slowly: at least one non-final stats
    # record before the final one, with counts that never go backwards.
    pcap = tmp_path / "slow.pcap"
    h.run_gen(["-n", 20000, "--http-share", 5], pcap)
    conf = h.write_config(tmp_path, "stats.conf",
                          "TIME_STATS 1\nFILTER_NAME http\nBPF tcp port 80\n"
                          "FIELDS http.host\n")
    feeder = tmp_path / "feed.sh"
    feeder.write_text(f"head -c 8000000 {pcap}; sleep 2.5; tail -c +8000001 {pcap}\n")
    import subprocess
    p = subprocess.run(f"sh {feeder} | {h.DATI} -r - -c {conf} -q", shell=True,
                       capture_output=True, timeout=60, env=h.sanitizer_env())
    run = h.Run(["dati", "-r", "-"], p.returncode, p.stdout, p.stderr.decode(), 0)
    assert p.returncode == 0, run.stderr
    stats = [o for o in run.objs if o.get("type") == "stats"]
    assert len(stats) >= 2 and not stats[0]["final"] and stats[-1]["final"], stats
    packets = [s["packets"] for s in stats]
    assert packets == sorted(packets) and packets[-1] == 20000


def test_records_are_not_held_back_while_input_stalls(tmp_path, binaries):
    # Half a capture, then a pause: the records of the first half must reach
    # the output during the pause (drain timer), not only at the end.
    import subprocess
    import time
    pcap = tmp_path / "trickle.pcap"
    h.run_gen(["-n", 2000, "--http-share", 10], pcap)
    out = tmp_path / "out.json"
    for threads in (1, 3):
        feeder = f"head -c 400000 {pcap}; sleep 4; tail -c +400001 {pcap}"
        p = subprocess.Popen(f"({feeder}) | {h.DATI} -r - -q -t {threads} -w {out}", shell=True,
                             env=h.sanitizer_env())
        time.sleep(2.5)
        early = out.read_bytes().count(b'"type":"record"') if out.exists() else 0
        assert p.wait(timeout=60) == 0
        final = out.read_bytes().count(b'"type":"record"')
        assert 0 < early < final, (threads, early, final)


def test_stop_signal_while_input_stalls(tmp_path, binaries):
    # SIGTERM while the input pipe is quiet: dati ends at once (not when the
    # pipe closes), every flow ends with reason shutdown, nothing half-counted.
    import signal
    import subprocess
    import time
    pcap = tmp_path / "stall.pcap"
    h.run_gen(["-n", 2000, "--http-share", 10], pcap)
    out = tmp_path / "out.json"
    for threads in (1, 3):
        feeder = subprocess.Popen(["sh", "-c", f"head -c 400000 {pcap}; sleep 20"],
                                  stdout=subprocess.PIPE, start_new_session=True)
        dati = subprocess.Popen([str(h.DATI), "-r", "-", "-q", "-t", str(threads), "-w", str(out)],
                                stdin=feeder.stdout, env=h.sanitizer_env())
        feeder.stdout.close()
        time.sleep(1.5)
        t0 = time.monotonic()
        dati.send_signal(signal.SIGTERM)
        try:
            rc = dati.wait(timeout=10)
        finally:
            os.killpg(feeder.pid, signal.SIGKILL)
            dati.kill()
        assert rc == 0, rc
        assert time.monotonic() - t0 < 5, "dati did not stop while its input was quiet"
        run = h.Run(["dati"], 0, out.read_bytes(), "", 0)
        s = run.stats
        assert s and s["final"], "no final statistics"
        assert s["flows"]["shutdown"] == len(run.flows) > 0
        assert {f["reason"] for f in run.flows} == {"shutdown"}
        assert s["processed"] == sum(s["decoded"].values())


@pytest.mark.parametrize("name, reason", [
    ("missing.pcap", "No such file or directory"),
    (".", "Is a directory"),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_input_that_cannot_be_opened_is_one_line(tmp_path, binaries, name, reason, threads):
    """A run that never started: one line naming the input and why, exit 1,
    no statistics, no records, and no output file made. (An input that
    opens but is no capture is damaged input: reported with statistics.)"""
    out = tmp_path / "out.json"
    run = h.run_dati(["-r", tmp_path / name, "-t", threads, "-w", out], expect_rc=(1,),
                     parse=False)
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and str(tmp_path / name) in lines[0] and reason in lines[0], lines
    assert run.stdout == b"" and not out.exists()


def test_input_that_is_no_capture_is_damage(tmp_path, binaries):
    (tmp_path / "text.pcap").write_text("hello, world\n")
    run = h.run_dati(["-r", tmp_path / "text.pcap"], expect_rc=(1,))
    assert "not a pcap or pcapng file" in run.stderr
    assert run.objs[-1]["packets"] == 0 and "not a pcap" in run.objs[-1]["input_error"]
