"""Fixtures for dati's integration tests.

Binaries come from $DATI_BUILD (default build/) under the repository root;
the real-traffic corpus from <repo>/../shared/corpus. Tests that take the
`capture` argument are run once per corpus capture, and are skipped (with the
reason) when the corpus is absent."""
import pytest

import dati_helpers as h


def pytest_generate_tests(metafunc):
    if "capture" in metafunc.fixturenames:
        names = h.corpus_captures()
        if names:
            metafunc.parametrize("capture", names)
        else:
            metafunc.parametrize("capture", [pytest.param(
                None, marks=pytest.mark.skip(reason=h.CORPUS_MISSING))])


@pytest.fixture(scope="session")
def binaries():
    for b in (h.DATI, h.DATI_GEN):
        if not b.is_file():
            pytest.fail(f"{b} not found: build it first (make, or DATI_BUILD=...)")
    return h.DATI, h.DATI_GEN


@pytest.fixture(scope="session")
def oracle_conf(tmp_path_factory):
    return h.write_config(tmp_path_factory.mktemp("conf"), "oracle.conf", h.ORACLE_CONF)


@pytest.fixture(scope="session")
def corpus_run(binaries, oracle_conf):
    """corpus_run(capture, threads=1, reassembly=True) -> Run of dati with
    ORACLE_CONF (and REASSEMBLY 0 when reassembly is false: the per-packet
    view), cached for the session. Damaged captures may exit 1; anything
    else fails."""
    cache = {}
    per_packet = oracle_conf.parent / "oracle-per-packet.conf"
    per_packet.write_text("REASSEMBLY 0\n" + h.ORACLE_CONF)

    def run(capture, threads=1, reassembly=True):
        key = (capture, threads, reassembly)
        if key not in cache:
            conf = oracle_conf if reassembly else per_packet
            cache[key] = h.run_dati(["-r", h.PCAP_DIR / capture, "-c", conf,
                                     "-t", threads, "--no-progress"], expect_rc=(0, 1))
        return cache[key]

    return run


GEN_ARGS = ["-n", 20000, "-s", 7, "--http-share", 5, "--dns-share", 2, "--tls-share", 2]


@pytest.fixture(scope="session")
def generated(tmp_path_factory, binaries):
    """The generated capture of the brief: {'path', 'summary', 'args'}."""
    path = tmp_path_factory.mktemp("gen") / "gen.pcap"
    return {"path": path, "summary": h.run_gen(GEN_ARGS, path), "args": GEN_ARGS}
