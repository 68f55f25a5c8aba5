"""The Redis output against a real Redis Cluster: six redis-server processes
on loopback ports (three masters, one replica each, cluster.py), one cluster
for the module, flushed before each test.

test_harness_*: the cluster itself (key slots, RedisCluster, resharding,
failover), without dati. The other tests run dati with REDIS_CLUSTER:
  - hash mode: the single-Redis layout spread over every master, each record
    equal to its JSON record; PUBLISH reaches subscribers on any node;
  - stream mode with REDIS_STREAM_SHARDS 3: one stream per shard, each on
    its own master, each record in the shard of its flow;
  - a slot migrated while dati writes (ASK, then MOVED): nothing lost;
  - bad seeds, passwords and configurations: clear errors, exit 2;
  - a master killed mid-run (last: it leaves the cluster one node short)."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict

import pytest

import dati_helpers as h

redis = pytest.importorskip("redis", reason="python3-redis is not installed (make deps)")
for _tool in ("redis-server", "redis-cli"):
    if not shutil.which(_tool):
        pytest.skip(f"{_tool} is not installed (make deps)", allow_module_level=True)
try:
    import redis.cluster   # noqa: F401  (python3-redis >= 4.1)
except ImportError:
    pytest.skip("python3-redis has no redis.cluster (4.1 or later needed)",
                allow_module_level=True)

import cluster as cl   # noqa: E402  (needs redis.cluster)
from test_redis import (CONF, expected_from_json, json_value, record_tuple,  # noqa: E402
                        start_redis_tcp, stop_redis)

# test_redis's configuration (filters http -> channel http_GET, dns with
# REDIS_PREFIX dati:rec:dns:, sessions on test:sessions), on a cluster
CLUSTER_CONF = CONF.replace("REDIS_SOCK {sock}\nREDIS_AUTH s3cret\n", "REDIS_CLUSTER {seeds}\n")
assert "REDIS_CLUSTER" in CLUSTER_CONF
REDIS_ONLY = ("REDIS_CLUSTER", "REDIS_AUTH", "SESSION", "REDIS_MODE", "REDIS_STREAM_SHARDS")
CHANNELS = ("http_GET", "dns", "test:sessions")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = cl.Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def rc(cluster):
    """The module's cluster, healthy and empty."""
    cluster.wait_healthy()
    cluster.flushall()
    return cluster


def default_probe():
    """PROBE_NAME's default with REDIS_CLUSTER: the host name up to its
    first character that is not a letter, digit, '_' or '-'."""
    m = re.match(r"[A-Za-z0-9_-]{1,63}", os.uname().nodename)
    return m.group(0) if m else "probe"


def write_confs(tmp_path, seeds, extra="", auth=None, name="cluster.conf"):
    """(dati's config with REDIS_CLUSTER seeds, the same minus Redis for JSON,
    with the PROBE_NAME that a cluster's records carry by default)."""
    text = CLUSTER_CONF.format(seeds=seeds)
    if auth:
        extra += f"REDIS_AUTH {auth}\n"
    text = text.replace("PKT_TTL 1000000000\n", "PKT_TTL 1000000000\n" + extra)
    jtext = "\n".join(l for l in text.splitlines() if not l.startswith(REDIS_ONLY)) + "\n"
    if "PROBE_NAME" not in jtext:
        jtext += f"PROBE_NAME {default_probe()}\n"
    return h.write_config(tmp_path, name, text), h.write_config(tmp_path, "json." + name, jtext)


@pytest.fixture(scope="module")
def big(tmp_path_factory, binaries):
    """A capture of 200 000 HTTP requests (1000 flows) and its JSON run."""
    d = tmp_path_factory.mktemp("big")
    pcap = d / "big.pcap"
    h.run_gen(["-n", 200000, "--http-share", 100], pcap)
    _, jconf = write_confs(d, "127.0.0.1:1")
    want = h.run_dati(["-r", pcap, "-c", jconf, "-t", 2, "-q"])
    assert len(want.records) >= 200000
    return {"path": pcap, "want": want}


@pytest.fixture(scope="module")
def mid(tmp_path_factory, binaries):
    """40 000 TCP packets, half of them HTTP requests (BPF tcp: 40 000
    records, 2000 flows), and the JSON run."""
    d = tmp_path_factory.mktemp("mid")
    pcap = d / "mid.pcap"
    h.run_gen(["-n", 40000, "-s", 3, "--http-share", 50], pcap)
    _, jconf = write_confs(d, "127.0.0.1:1")
    want = h.run_dati(["-r", pcap, "-c", jconf, "-t", 2, "-q"])
    return {"path": pcap, "want": want, "data": pcap.read_bytes()}


# ---------------------------------------------------------------- helpers

def cluster_stats(stats):
    """The final stats record's redis.cluster member:
    {"masters", "moved", "ask", "retries", "refreshes", ...}."""
    rd = stats.get("redis", {})
    assert "cluster" in rd, f"no redis.cluster in the stats record: {sorted(rd)}"
    cs = rd["cluster"]
    for k in ("masters", "moved", "ask", "retries", "refreshes"):
        assert isinstance(cs.get(k), int), f"stats cluster.{k}: {cs}"
    return cs


def fetch(cluster, keys, what="hgetall"):
    """{key: reply} of one command per key, pipelined on each key's master."""
    owners = cluster.owner_table()
    by_node = defaultdict(list)
    for k in keys:
        by_node[owners[cl.keyslot(k)]].append(k)
    out = {}
    for port, ks in by_node.items():
        pipe = cluster.node_client(port).pipeline(transaction=False)
        for k in ks:
            getattr(pipe, what)(k)
        out.update(zip(ks, pipe.execute()))
    return out


def xrange_all(client, key, chunk=10000):
    """Every entry of a stream, in chunks."""
    out, start = [], "-"
    while True:
        part = client.xrange(key, min=start, count=chunk)
        out.extend(part)
        if len(part) < chunk:
            return out
        start = "(" + part[-1][0].decode()


def json_record_hash(r):
    """The hash (or stream entry) of a JSON field record, as test_redis's
    expected_from_json() makes it."""
    d = {b"Timestamp": str(r["ts"]).encode(), b"filter": r["filter"].encode()}
    if "flow" in r:
        d[b"flow"] = str(r["flow"]).encode()
    for k, v in r["fields"].items():
        d[k.encode()] = json_value(v)
    if "probe" in r:
        d[b"probe"] = r["probe"].encode()
    return d


def check_hash_records(cluster, stats, want, sample=None):
    """The stats and the hashes of a hash-mode run against the JSON run:
    one dati:rec:* key per JSON record, equal (all, or a sample) field by
    field, each with its TTL."""
    rd = stats["redis"]
    assert rd["lost"] == 0 and rd["flows_lost"] == 0 and rd["errors"] == 0, rd
    assert rd["records"] == len(want.records) and rd["flows"] == len(want.flows), rd
    keys = cluster.scan_all("dati:rec:*")
    assert len(keys) == len(want.records), (len(keys), len(want.records))
    ids = [int(k.rsplit(b":", 1)[1]) for k in keys]
    top = int(cluster.client().get("dati:id"))
    assert top % 1024 == 0 and max(ids) <= top, (top, max(ids))   # blocks of INCRBY dati:id 1024
    if sample is None:
        got = fetch(cluster, keys)
        assert Counter(record_tuple(v) for v in got.values()) == expected_from_json(want), \
            "Redis hashes differ from the JSON records"
        checked = keys[:100]
    else:
        by_key = {}
        for r in want.records:   # (Timestamp, filter, flow) names one record of these captures
            d = json_record_hash(r)
            k = (d[b"Timestamp"], d[b"filter"], d.get(b"flow"))
            assert k not in by_key, f"two JSON records with {k}"
            by_key[k] = d
        checked = random.Random(7).sample(keys, min(sample, len(keys)))
        bad = []
        for k, v in fetch(cluster, checked).items():
            w = by_key.get((v.get(b"Timestamp"), v.get(b"filter"), v.get(b"flow")))
            if w != v:
                bad.append(f"{k}: {v} / JSON {w}")
        assert not bad, f"{len(bad)} of {len(checked)} hashes differ: " + "\n".join(bad[:10])
    ttls = fetch(cluster, checked, "ttl")
    assert all(0 < t <= 300 for t in ttls.values()), f"TTLs of record hashes: {sorted(ttls.values())[:5]}"
    return keys


def subscribe_all_nodes(cluster, port, channels):
    """Subscribes on one node (e.g. a replica); finish() collects every message
    until an end mark published on every live node has come back: PUBLISH
    reaches other nodes over the cluster bus, in order from each node."""
    client = cluster.node_client(port)
    ps = client.pubsub()
    ps.subscribe(*channels)
    for _ in channels:
        ps.get_message(timeout=5)
    got, marks = [], set()
    nodes = cluster.live_ports()
    done = threading.Event()

    def loop():
        while not done.is_set():
            m = ps.get_message(timeout=0.1)
            if m and m["type"] == "message":
                if m["data"].startswith(b"__test_end__"):
                    marks.add(m["data"])
                    if len(marks) == len(nodes):
                        return
                else:
                    got.append((m["channel"], m["data"]))
    t = threading.Thread(target=loop, daemon=True)
    t.start()

    def finish():
        for p in nodes:
            cluster.node_client(p).publish(channels[0], b"__test_end__%d" % p)
        t.join(60)
        done.set()
        assert not t.is_alive(), f"end marks back: {sorted(marks)} of {nodes}"
        ps.close()
        return got
    return finish


class FedDati:
    """dati reading a capture on its standard input, fed piece by piece (at
    packet boundaries) from a thread, its output collected by threads."""

    def __init__(self, args, data, env_extra=None):
        self.data, self.offs = data, h.packet_offsets(data)
        self.packets = len(self.offs) - 1
        env = h.sanitizer_env()
        env.update(env_extra or {})
        self.proc = subprocess.Popen([str(h.DATI), "-r", "-"] + [str(a) for a in args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.out, self.err = [], []
        self.readers = [threading.Thread(target=lambda f=f, b=b: b.extend(f), daemon=True)
                        for f, b in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.readers:
            t.start()
        self.sent = 0
        self._write(data[:24])

    def _write(self, chunk, timeout=30):
        def run():
            try:
                self.proc.stdin.write(chunk)
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout)
        assert not t.is_alive(), f"dati stopped reading its input:\n{self.stderr()[-2000:]}"

    def feed(self, upto):
        """Packets up to (not including) index upto."""
        upto = min(upto, self.packets)
        self._write(self.data[self.offs[self.sent]:self.offs[upto]])
        self.sent = upto

    def stderr(self):
        return b"".join(self.err).decode("utf-8", "replace")

    def finish(self, timeout=90):
        """The rest of the input, end of input; returns (exit status, final
        stats, stderr) once dati has exited."""
        self.feed(self.packets)
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"dati still running {timeout} s after the end of its input\n"
                                 f"stderr: {self.stderr()[-2000:]}") from None
        for t in self.readers:
            t.join(10)
        err = self.stderr()
        h.check_no_crash("dati -r -", self.proc.returncode, err)
        lines = b"".join(self.out).decode().splitlines()
        stats = json.loads(lines[-1]) if lines else None
        return self.proc.returncode, stats, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def records_upto(want, packets):
    """JSON records of the first `packets` packets."""
    return sum(1 for r in want.records if r["frame"] <= packets)


def wait_stored(cluster, n, dati, what, timeout=30):
    """Until n dati:rec:* keys are in the cluster (on any master)."""
    end, got = time.monotonic() + timeout, None
    while time.monotonic() < end:
        got = len(cluster.scan_all("dati:rec:*"))
        if got == n:
            return
        assert dati.proc.poll() is None, f"dati exited: {dati.stderr()[-2000:]}"
        time.sleep(0.1)
    hint = " (a multiple of 1024: waiting for INCRBY dati:id?)" if got and got % 1024 == 0 else ""
    raise AssertionError(f"{what}: {got} records stored after {timeout} s, expected {n}{hint}\n"
                         f"dati's stderr: {dati.stderr()[-2000:]}")


# ---------------------------------------------------------------- the harness

def test_harness_keyslot(cluster):
    """keyslot() (CRC16-XMODEM, hash tags) equals CLUSTER KEYSLOT; the
    contract's shard tags for 3 shards land on the 3 masters of redis-cli's
    split."""
    assert cl.crc16(b"123456789") == 0x31C3   # the specification's check value
    rnd = random.Random(5)
    keys = ["", "foo", "{user1000}.following", "{user1000}.followers", "foo{}{bar}",
            "foo{{bar}}zap", "foo{bar}{zap}", "{}", "{", "}", "}{", "a{b", "a}b{c}",
            "dati:id", "dati:streams", "http_GET:{0}", "dati:rec:1", "\u00e9t\u00e9"]
    keys += [f"dati:rec:{i}" for i in rnd.sample(range(10 ** 7), 500)]
    keys += ["".join(rnd.choice("ab{}:x0") for _ in range(rnd.randint(0, 12))) for _ in range(500)]
    keys += [bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 20))) for _ in range(300)]
    pipe = cluster.node_client(cluster.masters()[0]).pipeline(transaction=False)
    for k in keys:
        pipe.execute_command("CLUSTER KEYSLOT", k)
    want = pipe.execute()
    bad = [(k, cl.keyslot(k), w) for k, w in zip(keys, want) if cl.keyslot(k) != w]
    assert not bad, bad[:10]
    assert [cl.keyslot(str(t)) for t in cl.shard_tags(3)] == [1584, 9842, 13907]
    assert cl.shard_keys("c", 3) == ["c:{3}", "c:{1}", "c:{0}"] and cl.shard_keys("c", 1) == ["c"]
    owners = cluster.owner_table()
    assert len({owners[cl.keyslot(k)] for k in cl.shard_keys("c", 3)}) == 3



def test_harness_cluster(rc):
    """Three masters splitting the slots as redis-cli does, one replica each;
    RedisCluster spreads keys over every master, each where keyslot() says."""
    masters, replicas = rc.masters(), rc.replicas()
    assert len(masters) == 3 and len(replicas) == 3
    assert [(s, e) for s, e, _, _ in rc.slot_map()] == [(0, 5460), (5461, 10922), (10923, 16383)]
    for _, p in masters:
        assert len(rc.replicas_of(p)) == 1
    c = rc.client()
    for i in range(3000):
        c.set(f"k:{i}", i)
    assert all(n > 500 for n in rc.dbsize().values()), rc.dbsize()
    assert len(rc.scan_all("k:*")) == 3000
    for i in range(0, 3000, 97):
        k = f"k:{i}"
        assert rc.node_client(rc.node_for_key(k)).get(k) == str(i).encode()
    rc.wait_replicated()
    owners = rc.owner_table()
    for _, p in replicas:   # a replica holds its master's keys
        master = rc.node_client(p).info("replication")["master_port"]
        mine = rc.scan_node(p, "k:*")
        assert mine and all(owners[cl.keyslot(k)] == master for k in mine)


def test_harness_migrate_slot(rc):
    """migrate_slot(): while MIGRATING/IMPORTING the source answers ASK for
    keys it does not have; after SETSLOT NODE it answers MOVED; the keys are
    on the destination, every node agrees, and RedisCluster finds them. The
    slot is moved back at the end (the standard split for later tests)."""
    c = rc.client()
    slot = cl.keyslot("{mig}")
    src = rc.node_for_slot(slot)[1]
    dst = [p for _, p in rc.masters() if p != src][0]
    for i in range(250):
        c.set(f"{{mig}}:{i}", i)
    seen = []

    def step(name):
        seen.append(name)
        s = rc.node_client(src)
        if name == "migrating":
            assert s.get("{mig}:1") == b"1"            # still here: served
            with pytest.raises(redis.exceptions.ResponseError, match=r"^ASK %d 127.0.0.1:%d" % (slot, dst)):
                s.set("{mig}:new", "x")                # not here: ASK
            d = rc.node_client(dst)
            with pytest.raises(redis.exceptions.ResponseError, match=r"^MOVED %d" % slot):
                d.get("{mig}:1")                       # not without ASKING
            pipe = d.pipeline(transaction=False)
            pipe.execute_command("ASKING")
            pipe.set("{mig}:new", "x")
            assert pipe.execute() == [True, True]
        elif name == "keys_moved":
            with pytest.raises(redis.exceptions.ResponseError, match=r"^ASK "):
                s.get("{mig}:1")
            assert s.execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0
        elif name == "node":
            pass
    t0 = time.monotonic()
    moved = rc.migrate_slot(slot, src, dst, pause=0.2, on_step=step)
    took = time.monotonic() - t0
    assert seen == ["migrating", "keys_moved", "node"] and moved == 250
    assert rc.node_for_slot(slot) == ("127.0.0.1", dst)
    for _, p in rc.masters():
        assert rc.slot_map(p) == rc.slot_map()
    with pytest.raises(redis.exceptions.ResponseError, match=r"^MOVED %d 127.0.0.1:%d" % (slot, dst)):
        rc.node_client(src).get("{mig}:1")
    assert rc.node_client(dst).execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 251
    assert [c.get(f"{{mig}}:{i}") for i in range(250)] == [str(i).encode() for i in range(250)]
    assert rc.migrate_slot(slot, dst, src) == 251
    assert [(s, e) for s, e, _, _ in rc.slot_map()] == [(0, 5460), (5461, 10922), (10923, 16383)]
    assert took < 5


def test_harness_failover(rc):
    """kill() a master (SIGKILL): its replica takes over its slots with
    every key it had; restart() brings the old master back as a replica."""
    c = rc.client()
    for i in range(2000):
        c.set(f"f:{i}", i)
    rc.wait_replicated()
    _, victim = rc.masters()[1]
    replica = rc.replicas_of(victim)[0]
    t0 = time.monotonic()
    rc.kill(victim)
    new = rc.wait_failover(victim)
    took = time.monotonic() - t0
    assert new == replica and len(rc.masters()) == 3
    c2 = rc.client()
    assert [c2.get(f"f:{i}") for i in range(2000)] == [str(i).encode() for i in range(2000)]
    rc.restart(victim)
    assert ("127.0.0.1", victim) in rc.replicas() and rc.replicas_of(new[1]) == [("127.0.0.1", victim)]
    assert took < 20, f"failover took {took:.1f} s"


# ---------------------------------------------------------------- dati: hash mode

def test_hash_mode_200k(tmp_path, binaries, rc, big):
    """200 000 records in hash mode: every one a hash on the master of its
    key's slot (each master holds about a third), equal to the JSON record."""
    want = big["want"]
    conf, _ = write_confs(tmp_path, rc.seeds(rc.masters()[:1]))
    run = h.run_dati(["-r", big["path"], "-c", conf, "-t", 2, "-q"])
    cs = cluster_stats(run.stats)
    assert cs["masters"] == 3, cs
    per_master = rc.count_keys("dati:rec:*")
    assert all(n > len(want.records) / 6 for n in per_master.values()), per_master
    assert all(n > 0 for n in rc.dbsize().values())
    check_hash_records(rc, run.stats, want, sample=1000)
    assert run.stdout.decode().count("\n") == 1, "with Redis, stdout has only the stats line"


def test_hash_mode_publish_reaches_any_node(tmp_path, binaries, rc, generated):
    """Seeds: a closed port, then a replica (no master), three workers: every
    record a hash equal to its JSON record; a subscriber on a replica gets
    every key on its filter's channel and every flow record on the session
    channel; the final statistics are in dati:stats and published there, as
    with one Redis."""
    seed, sub = rc.replicas()[0], rc.replicas()[-1]
    conf, jconf = write_confs(tmp_path, f"127.0.0.1:{cl.closed_ports(1)[0]} " + rc.seeds([seed]))
    finish = subscribe_all_nodes(rc, sub[1], ["http_GET", "dns", "test:sessions", "dati:stats"])
    run = h.run_dati(["-r", generated["path"], "-c", conf, "-t", 3, "-q"])
    messages = finish()
    want = h.run_dati(["-r", generated["path"], "-c", jconf, "-t", 3, "-q"])
    keys = check_hash_records(rc, run.stats, want)
    dns_keys = [k for k in keys if k.startswith(b"dati:rec:dns:")]   # REDIS_PREFIX
    assert len(dns_keys) == sum(1 for r in want.records if r["filter"] == "dns") > 0
    published = [d for c, d in messages if c in (b"http_GET", b"dns")]
    assert sorted(published) == sorted(keys), "published keys differ from the hashes"
    assert all(c == b"dns" for c, d in messages if d.startswith(b"dati:rec:dns:"))
    sessions = Counter(d.decode() for c, d in messages if c == b"test:sessions")
    assert sessions == Counter(l for l in want.lines if l.startswith('{"type":"flow"'))
    final = [l for l in run.lines if l.startswith('{"type":"stats"')][-1]
    # several probes, one cluster: each its own statistics hash, one channel
    assert json.loads(final)["probe"] == default_probe()
    assert rc.client().hget(f"dati:stats:{default_probe()}", "json").decode() == final
    assert rc.client().exists("dati:stats") == 0
    assert final.encode() in [d for c, d in messages if c == b"dati:stats"]
    assert cluster_stats(run.stats)["masters"] == 3


# ---------------------------------------------------------------- dati: stream mode

def test_stream_mode_3_shards(tmp_path, binaries, rc, big):
    """REDIS_STREAM_SHARDS 3: each channel's records in 3 streams
    <channel>:{t}, one per master, listed in dati:streams; a record in shard
    flow mod 3, the entries equal to the JSON records, flow records the same
    way on the session channel; no hashes."""
    want = big["want"]
    conf, _ = write_confs(tmp_path, rc.seeds(), "REDIS_MODE stream\nREDIS_STREAM_SHARDS 3\n")
    run = h.run_dati(["-r", big["path"], "-c", conf, "-t", 2, "-q"])
    rd = run.stats["redis"]
    assert rd["lost"] == 0 and rd["flows_lost"] == 0 and rd["records"] == len(want.records), rd
    assert cluster_stats(run.stats)["masters"] == 3
    c = rc.client()
    listed = {k.decode(): v.decode().split(",") for k, v in c.hgetall("dati:streams").items()}
    for ch in CHANNELS:
        assert listed.get(ch) == cl.shard_keys(ch, 3), (ch, listed)
    assert len({rc.node_for_key(k) for k in listed["http_GET"]}) == 3, "shards share a master"
    got, n = Counter(), 0
    for s, key in enumerate(listed["http_GET"]):
        entries = xrange_all(rc.node_client(rc.node_for_key(key)), key)
        n += len(entries)
        wrong = [f for _, f in entries if int(f[b"flow"]) % 3 != s]
        assert not wrong, f"{key}: {len(wrong)} records of other shards, e.g. {wrong[0]}"
        got.update(record_tuple(f) for _, f in entries)
    assert n == len(want.records)
    assert got == expected_from_json(want), "stream entries differ from the JSON records"
    flows = Counter()
    for s, key in enumerate(listed["test:sessions"]):
        for _, f in xrange_all(rc.node_client(rc.node_for_key(key)), key):
            assert json.loads(f[b"flow"])["flow"] % 3 == s, (key, f)
            flows[f[b"flow"].decode()] += 1
    assert flows == Counter(l for l in want.lines if l.startswith('{"type":"flow"'))
    assert rc.scan_all("dati:rec:*") == [] and c.exists("http_GET", "test:sessions") == 0


class ShardedSubscriber:
    """SSUBSCRIBE to each of some sharded channels on the master that owns
    its slot (one raw connection per channel: python3-redis 4.3 has no
    ssubscribe); finish() SPUBLISHes an end mark on each channel and returns
    [(channel, message)] of everything before the marks."""

    def __init__(self, cluster, channels):
        self.got, self.conns, self.threads = [], [], []
        self.lock = threading.Lock()
        self.cluster, self.channels = cluster, channels
        for ch in channels:
            host, port = cluster.node_for_key(ch)
            conn = redis.Connection(host=host, port=port, socket_timeout=30)
            conn.connect()
            conn.send_command("SSUBSCRIBE", ch)
            reply = conn.read_response()
            assert reply[0] == b"ssubscribe", reply
            self.conns.append(conn)
            t = threading.Thread(target=self._loop, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _loop(self, conn):
        while True:
            kind, ch, data = conn.read_response()[:3]
            assert kind == b"smessage", kind
            if data == b"__test_end__":
                return
            with self.lock:
                self.got.append((ch.decode(), data))

    def finish(self):
        for ch in self.channels:
            self.cluster.node_client(self.cluster.node_for_key(ch)[1]).execute_command(
                "SPUBLISH", ch, "__test_end__")
        for t in self.threads:
            t.join(60)
            assert not t.is_alive(), "no end mark on a sharded channel"
        for c in self.conns:
            c.disconnect()
        return self.got


def test_sharded_pubsub(tmp_path, binaries, rc, mid):
    """REDIS_PUBSUB sharded with REDIS_STREAM_SHARDS 3: each record's key
    SPUBLISHed on <channel>:{t} of its flow's shard, one shard per master,
    listed in dati:streams; the key carries the same hash tag, so that its
    hash is on the master that published it; the hashes equal the JSON
    records; flow records SPUBLISHed the same way on the session channel."""
    want = mid["want"]
    conf, _ = write_confs(tmp_path, rc.seeds(), "REDIS_PUBSUB sharded\nREDIS_STREAM_SHARDS 3\n")
    shards = {ch: cl.shard_keys(ch, 3) for ch in ("http_GET", "test:sessions")}
    sub = ShardedSubscriber(rc, shards["http_GET"] + shards["test:sessions"])
    run = h.run_dati(["-r", mid["path"], "-c", conf, "-t", 2, "-q"])
    got = sub.finish()
    rd = run.stats["redis"]
    assert rd["lost"] == 0 and rd["errors"] == 0 and rd["records"] == len(want.records), rd
    listed = {k.decode(): v.decode().split(",") for k, v in rc.client().hgetall("dati:streams").items()}
    assert listed["http_GET"] == shards["http_GET"] and listed["test:sessions"] == shards["test:sessions"]
    assert len({rc.node_for_key(k) for k in shards["http_GET"]}) == 3, "shards share a master"
    keys = [d for ch, d in got if ch.startswith("http_GET")]
    assert len(keys) == len(set(keys)) == len(want.records)   # the mid capture: all on http_GET
    hashes = fetch(rc, keys)
    for ch, key in got:
        if ch.startswith("http_GET"):
            tag = ch[ch.index("{"):]
            assert key.decode().startswith("dati:rec:" + tag + ":"), (ch, key)
            assert int(hashes[key][b"flow"]) % 3 == shards["http_GET"].index(ch), (ch, key)
    assert Counter(record_tuple(v) for v in hashes.values()) == expected_from_json(want)
    flows = Counter(d.decode() for ch, d in got if ch.startswith("test:sessions"))
    assert flows == Counter(l for l in want.lines if l.startswith('{"type":"flow"'))
    assert all(json.loads(d)["flow"] % 3 == shards["test:sessions"].index(ch)
               for ch, d in got if ch.startswith("test:sessions"))


def run_analyzer(cmd, dati_args):
    """An analyzer started before dati (waited for until it says so), dati
    run, then the analyzer's output once it has been quiet for a while."""
    analyzer = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        line = analyzer.stdout.readline()
        assert "subscribed" in line or "reading" in line, line + analyzer.stderr.read()[-2000:]
        run = h.run_dati(dati_args)
        out, err = analyzer.communicate(timeout=90)
    finally:
        if analyzer.poll() is None:
            analyzer.kill()
            analyzer.wait()
    assert analyzer.returncode == 0, err[-2000:]
    return out, run


def register_shards(rc):
    """dati:streams as dati writes it at start (an analyzer comes first)."""
    for ch in ("http_GET", "test:sessions"):
        rc.client().hset("dati:streams", ch, ",".join(cl.shard_keys(ch, 3)))


def check_analyzer_output(rc, out, want, group=None):
    """Every request and session counted, hosts as the JSON records have
    them; with a consumer group, every stream entry acknowledged."""
    assert f"total requests {len(want.records)} sessions {len(want.flows)}" in out, out
    assert tops(out) == Counter(r["fields"]["http.host"] for r in want.records
                                if "http.host" in r["fields"]), out
    for ch in ("http_GET", "test:sessions") if group else ():
        for key in cl.shard_keys(ch, 3):
            assert rc.client().xpending(key, group)["pending"] == 0, key


def tops(out):
    return {l.split()[3]: int(l.split()[2]) for l in out.splitlines() if l.startswith("top host")}


@pytest.mark.parametrize("layout", ("hash", "stream"))
def test_python_analyzer_on_the_cluster(tmp_path, binaries, rc, mid, layout):
    """examples/analyzers/python/top_hosts.py --cluster: the hash layout by
    pub/sub and HGETALL on each key's master, the stream layout (3 shards)
    in a consumer group: every request and session counted, hosts as the
    JSON records have them, every entry acknowledged."""
    want = mid["want"]
    extra = "" if layout == "hash" else "REDIS_MODE stream\nREDIS_STREAM_SHARDS 3\n"
    conf, _ = write_confs(tmp_path, rc.seeds(), extra)
    if layout == "stream":
        register_shards(rc)
    cmd = ["/usr/bin/python3", h.REPO / "examples" / "analyzers" / "python" / "top_hosts.py",
           "--cluster", rc.seeds().replace(" ", ","), "--channel", "http_GET",
           "--sessions", "test:sessions", "--period", "0.5", "--idle-exit", "3", "--top", "10"]
    if layout == "stream":
        cmd += ["--streams", "--group", "g1"]
    out, run = run_analyzer(cmd, ["-r", mid["path"], "-c", conf, "-t", 2, "-q"])
    check_analyzer_output(rc, out, want, "g1" if layout == "stream" else None)


@pytest.mark.parametrize("layout", ("hash", "stream"))
def test_node_analyzer_on_the_cluster(tmp_path, binaries, rc, mid, layout):
    """examples/analyzers/node/requests.js --cluster (node-redis'
    createCluster): the hash layout by pub/sub, the stream layout (3 shards)
    in a consumer group: every request and session counted, every entry
    acknowledged."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed")
    from test_redis import npm_app
    app = npm_app(tmp_path, ["requests.js"])
    want = mid["want"]
    extra = "" if layout == "hash" else "REDIS_MODE stream\nREDIS_STREAM_SHARDS 3\n"
    conf, _ = write_confs(tmp_path, rc.seeds(), extra)
    cmd = ["node", app / "requests.js", "--cluster", rc.seeds().replace(" ", ","),
           "--channel", "http_GET", "--sessions", "test:sessions", "--period", "0.5",
           "--idle-exit", "3"]
    if layout == "stream":
        register_shards(rc)
        cmd += ["--streams", "1", "--group", "g2"]
    out, _ = run_analyzer(cmd, ["-r", mid["path"], "-c", conf, "-t", 2, "-q"])
    check_analyzer_output(rc, out, want, "g2" if layout == "stream" else None)


# ---------------------------------------------------------------- dati: resharding

def test_slot_migrated_while_writing(tmp_path, binaries, rc, mid):
    """Slots migrated while dati writes, fed a capture in quarters: the slot
    of dati:id and 63 slots of record ids dati is about to use, all of one
    master, moved to another. Quarter 2 is written while they are MIGRATING
    (new keys: ASK), quarter 3 once their keys are moved (every key: ASK),
    quarter 4 after SETSLOT NODE (MOVED to a client with the old map). Every
    record is stored once, the ids stay unique, nothing is lost."""
    want, data = mid["want"], mid["data"]
    conf, _ = write_confs(tmp_path, rc.seeds())
    dati = FedDati(["-c", conf, "-t", 2, "-q"], data)
    try:
        q = [dati.packets * i // 4 for i in range(5)]
        dati.feed(q[1])
        wait_stored(rc, records_upto(want, q[1]), dati, "quarter 1")
        c = rc.client()
        top = int(c.get("dati:id"))
        existing = set(rc.scan_all("dati:rec:*"))
        owners = rc.owner_table()
        src = owners[cl.keyslot("dati:id")]
        dst = next(p for _, p in rc.masters() if p != src)
        # ids of the blocks the two workers hold and of the next ones
        upcoming, seen = [], set()
        for i in range(max(1, top - 4095), top + 4 * len(want.records) // 3):
            k = b"dati:rec:%d" % i
            s = cl.keyslot(k)
            if k not in existing and owners[s] == src and s not in seen:
                upcoming.append(s)
                seen.add(s)
        slots = [cl.keyslot("dati:id")] + [s for s in upcoming[::max(1, len(upcoming) // 63)]
                                          if s != cl.keyslot("dati:id")][:63]

        def step(name):
            if name == "migrating":
                dati.feed(q[2])
                wait_stored(rc, records_upto(want, q[2]), dati, "quarter 2 (MIGRATING)")
            elif name == "keys_moved":
                assert all(rc.node_client(src).execute_command("CLUSTER COUNTKEYSINSLOT", s) == 0
                           for s in slots)
                dati.feed(q[3])
                wait_stored(rc, records_upto(want, q[3]), dati, "quarter 3 (keys moved)")
        moved_keys = rc.migrate_slots(slots, src, dst, on_step=step)
        status, stats, err = dati.finish()
    finally:
        dati.kill()
    assert status == 0, err[-3000:]
    assert moved_keys > 1   # dati:id and the records of quarter 1 in those slots
    owners = rc.owner_table()
    assert all(owners[s] == dst for s in slots)
    assert all(rc.node_client(src).execute_command("CLUSTER COUNTKEYSINSLOT", s) == 0 for s in slots)
    check_hash_records(rc, stats, want)
    cs = cluster_stats(stats)
    assert cs["moved"] + cs["ask"] > 0, cs
    assert cs["ask"] > 0, f"quarter 3 reached keys of moved slots only through ASK: {cs}"
    assert cs["masters"] == 3, cs


# ---------------------------------------------------------------- dati: bad input

def test_seed_not_in_cluster_mode(tmp_path, binaries, generated):
    server, _, port = start_redis_tcp()
    try:
        conf, _ = write_confs(tmp_path, f"127.0.0.1:{port}")
        run = h.run_dati(["-r", generated["path"], "-c", conf, "-q"], expect_rc=(2,), parse=False,
                         timeout=30)
    finally:
        stop_redis(server)
    assert f"127.0.0.1:{port}" in run.stderr, run.stderr
    assert re.search(r"not (in |a )?cluster|cluster (mode|support) (is )?(disabled|off)",
                     run.stderr, re.I), run.stderr
    assert len([l for l in run.stderr.splitlines() if l.strip()]) <= 2, run.stderr


def test_seeds_unreachable(tmp_path, binaries, generated):
    ports = cl.closed_ports(3)
    conf, _ = write_confs(tmp_path, " ".join(f"127.0.0.1:{p}" for p in ports))
    t0 = time.monotonic()
    run = h.run_dati(["-r", generated["path"], "-c", conf, "-q"], expect_rc=(2,), parse=False,
                     timeout=30)
    assert time.monotonic() - t0 < 10
    assert "cannot connect" in run.stderr, run.stderr
    assert any(f"127.0.0.1:{p}" in run.stderr for p in ports), run.stderr


@pytest.fixture
def password(rc):
    """The module's cluster with requirepass and masterauth on every node,
    removed again after the test."""
    rc.set_password("cl-s3cret")
    try:
        yield "cl-s3cret"
    finally:
        rc.set_password(None)


def test_cluster_auth(tmp_path, binaries, rc, password, generated):
    """A cluster that requires a password: dati without REDIS_AUTH, or with
    a wrong one, stops at start (exit 2) saying AUTH was refused; with the
    right one every record is stored (REDIS_AUTH applies to every node)."""
    for auth, name in ((None, "none.conf"), ("wrong", "wrong.conf")):
        conf, _ = write_confs(tmp_path, rc.seeds(), auth=auth, name=name)
        t0 = time.monotonic()
        run = h.run_dati(["-r", generated["path"], "-c", conf, "-q"], expect_rc=(2,), parse=False,
                         timeout=30)
        assert time.monotonic() - t0 < 10
        assert re.search(r"refused AUTH|AUTH (was )?refused|NOAUTH|[Aa]uthentication required",
                         run.stderr), (auth, run.stderr)
        assert "127.0.0.1:" in run.stderr, run.stderr
    conf, jconf = write_confs(tmp_path, rc.seeds(), auth=password, name="right.conf")
    run = h.run_dati(["-r", generated["path"], "-c", conf, "-t", 2, "-q"])
    want = h.run_dati(["-r", generated["path"], "-c", jconf, "-t", 2, "-q"])
    check_hash_records(rc, run.stats, want)


CHECKS = [
    # (config lines before the filter, exit status, words of the error line)
    ("REDIS_CLUSTER 127.0.0.1:7000 127.0.0.1:7001\nREDIS_SOCK /tmp/x.sock\n", 2,
     ("REDIS_CLUSTER", "REDIS_SOCK")),
    ("REDIS_SOCK /tmp/x.sock\nREDIS_CLUSTER 127.0.0.1:7000\n", 2, ("REDIS_CLUSTER", "REDIS_SOCK")),
    ("REDIS_CLUSTER 127.0.0.1:7000\nREDIS_HOST 127.0.0.1\n", 2, ("REDIS_CLUSTER", "REDIS_HOST")),
    ("REDIS_CLUSTER 127.0.0.1:7000\nREDIS_DB 1\n", 2, ("REDIS_DB",)),
    ("REDIS_CLUSTER 127.0.0.1:7000\nREDIS_STREAM_SHARDS 0\n", 2, ("REDIS_STREAM_SHARDS",)),
    ("REDIS_CLUSTER 127.0.0.1:7000\nREDIS_STREAM_SHARDS 65\n", 2, ("REDIS_STREAM_SHARDS",)),
    ("REDIS_CLUSTER 127.0.0.1:7000 127.0.0.1:70000\n", 2, ("70000",)),
    ("REDIS_CLUSTER\n", 2, ("REDIS_CLUSTER",)),
    ("REDIS_CLUSTER 127.0.0.1:7000 127.0.0.1:7001\nREDIS_DB 0\nREDIS_MODE stream\n"
     "REDIS_STREAM_SHARDS 64\nREDIS_AUTH pw\n", 0, None),
    ("REDIS_CLUSTER 127.0.0.1:7000\n", 0, None),
]


@pytest.mark.parametrize("lines,status,words", CHECKS)
def test_cluster_config_check(tmp_path, binaries, lines, status, words):
    """--check: REDIS_CLUSTER excludes REDIS_SOCK/REDIS_HOST and REDIS_DB
    other than 0, REDIS_STREAM_SHARDS is 1..64, seeds are host:port; each
    error as file:line naming what is wrong. A valid configuration passes
    without any cluster running (--check connects to nothing)."""
    conf = h.write_config(tmp_path, "c.conf", lines + "FILTER_NAME a\nBPF tcp\nFIELDS ip.src\n")
    run = h.run_dati(["-c", conf, "--check"], expect_rc=(status,), parse=False, timeout=10)
    if words:
        where = re.compile(r"c\.conf:[1-%d]: " % lines.count("\n"))
        errs = [l for l in run.stderr.splitlines() if where.search(l)]
        assert any(all(w in l for w in words) for l in errs), run.stderr


# ---------------------------------------------------------------- dati: failover (last)

def test_two_probes_one_cluster(tmp_path, binaries, rc, mid):
    """Two probes (PROBE_NAME a and b) write the same capture into one
    cluster at the same time, with flow hashes (REDIS_FLOW_EXPIRE): no key
    of one overwrites the other's (ids unique across probes, flow hashes
    and statistics under each probe's name), every record carries its
    probe."""
    want = mid["want"]
    procs = []
    for probe in ("a", "b"):
        conf, _ = write_confs(tmp_path, rc.seeds(), name=f"{probe}.conf",
                              extra=f"PROBE_NAME {probe}\nREDIS_FLOW_EXPIRE 300\n")
        procs.append(subprocess.Popen([str(h.DATI), "-r", str(mid["path"]), "-c", str(conf), "-t", "2", "-q"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=h.sanitizer_env()))
    for p in procs:
        out, err = p.communicate(timeout=120)
        h.check_no_crash("dati", p.returncode, err.decode(errors="replace"))
        assert p.returncode == 0, err.decode(errors="replace")[-2000:]
        stats = json.loads(out.decode().splitlines()[-1])
        assert stats["redis"]["records"] == len(want.records) and stats["redis"]["lost"] == 0
    keys = rc.scan_all("dati:rec:*")
    assert len(keys) == 2 * len(want.records)
    probes = Counter(v[b"probe"] for v in fetch(rc, keys, "hgetall").values())
    assert probes == {b"a": len(want.records), b"b": len(want.records)}, probes
    for probe in ("a", "b"):
        assert len(rc.scan_all(f"dati:flow:{probe}:*")) == len(want.flows) > 0
        stats = json.loads(rc.client().hget(f"dati:stats:{probe}", "json"))
        assert stats["probe"] == probe and stats["final"] is True
    assert rc.scan_all("dati:flow:[0-9]*") == []


# Live mode (never waiting), reached through the DATI_TEST_REDIS_LIVE=1 test
# hook as in test_redis_live.py: the cluster runs on loopback in this
# namespace, where a live capture's namespace could not reach it.
LIVE = {"DATI_TEST_REDIS_LIVE": "1"}


def node_stats(stats):
    """{port: per-node counters} of the final stats record."""
    return {int(k.rsplit(":", 1)[1]): v for k, v in cluster_stats(stats)["nodes"].items()}


def paced(dati, upto, step=200, pause=0.01):
    """Feeds up to packet upto at a live link's pace, not a file's: live
    mode drops what Redis cannot take at full reading speed."""
    while dati.sent < min(upto, dati.packets):
        dati.feed(min(upto, dati.sent + step))
        time.sleep(pause)


def check_live_accounting(rc, stats, want):
    """Every JSON record is stored or counted: queued = stored + lost, and
    queued + dropped = the JSON run's; the nodes' counters add up."""
    rd, rec = stats["redis"], stats["records"]
    stored = len(rc.scan_all("dati:rec:*"))
    assert rec["field"] == rd["records"] and stored == rd["records"] - rd["lost"], (stored, rd)
    assert rec["field"] + rec["field_dropped"] == len(want.records), rec
    assert rec["field_dropped"] + rec["flow_dropped"] == \
        rd["dropped_queue_full"] + rd["dropped_disconnected"], (rec, rd)
    nodes = node_stats(stats)
    for k in ("records", "lost", "dropped_queue_full", "dropped_disconnected"):
        assert sum(n[k] for n in nodes.values()) == rd[k], (k, nodes)
    return nodes


def test_live_master_frozen(tmp_path, binaries, rc, mid):
    """Live mode, a master (not dati:id's) frozen with SIGSTOP for about a
    second, shorter than cluster-node-timeout: dati keeps reading, the other
    masters' records keep being stored meanwhile, the frozen master's are
    counted as dropped (queue full) on its node only, and every record is
    stored or counted."""
    want, data = mid["want"], mid["data"]
    conf, _ = write_confs(tmp_path, rc.seeds(), extra="REDIS_PIPELINE 200\n")
    victim = next(p for _, p in rc.masters()
                  if (cl.HOST, p) not in (rc.node_for_key("dati:id"), rc.node_for_key("test:sessions")))
    others = [p for _, p in rc.masters() if p != victim]
    dati = FedDati(["-c", conf, "-t", 2, "-q"], data, LIVE)
    stopped = False
    try:
        third = dati.packets // 3
        paced(dati, third)
        wait_stored(rc, records_upto(want, third), dati, "first third")
        before = sum(len(rc.scan_node(p, "dati:rec:*")) for p in others)
        rc.nodes[victim].proc.send_signal(signal.SIGSTOP)
        stopped = True
        paced(dati, 2 * third)   # never blocks: FedDati asserts that dati reads on
        end = time.monotonic() + 5
        while sum(len(rc.scan_node(p, "dati:rec:*")) for p in others) < before + 1000:
            assert time.monotonic() < end, "the other masters got no records while one was frozen"
            time.sleep(0.05)
        rc.nodes[victim].proc.send_signal(signal.SIGCONT)
        stopped = False
        paced(dati, dati.packets)
        status, stats, err = dati.finish(timeout=60)
    finally:
        if stopped:
            rc.nodes[victim].proc.send_signal(signal.SIGCONT)
        dati.kill()
    assert status == 0, err[-3000:]
    nodes = check_live_accounting(rc, stats, want)
    assert nodes[victim]["dropped_queue_full"] > 100, nodes
    # the flow records, published on test:sessions' master at the end of the
    # input all at once, may overrun its pipelines: nothing else may drop
    sessions = rc.node_for_key("test:sessions")[1]
    for p in others:
        dropped = nodes[p]["dropped_queue_full"] + nodes[p]["dropped_disconnected"]
        assert dropped <= (stats["records"]["flow_dropped"] if p == sessions else 0), nodes
    assert stats["redis"]["lost"] == 0 and stats["redis"]["errors"] == 0, stats["redis"]


def test_live_master_killed(tmp_path, binaries, rc, mid):
    """Live mode, a master (not dati:id's) killed with SIGKILL: what it had
    not answered is counted lost, its slots' records are counted dropped
    (disconnected) until its replica takes over, then stored there: dati
    finds the new master without waiting (a failover counted). The killed
    node is started again afterwards: it rejoins as a replica."""
    want, data = mid["want"], mid["data"]
    conf, _ = write_confs(tmp_path, rc.seeds(), extra="REDIS_PIPELINE 200\n")
    victim = next(p for _, p in rc.masters() if (cl.HOST, p) != rc.node_for_key("dati:id"))
    dati = FedDati(["-c", conf, "-t", 2, "-q"], data, LIVE)
    try:
        third = dati.packets // 3
        paced(dati, third)
        wait_stored(rc, records_upto(want, third), dati, "first third")
        rc.kill(victim)
        paced(dati, third + third // 4)
        new = rc.wait_failover(victim)
        time.sleep(1.5)   # the refresher asks for the slot map once a second
        before = len(rc.scan_node(new[1], "dati:rec:*"))
        paced(dati, 2 * third)
        paced(dati, dati.packets)
        status, stats, err = dati.finish(timeout=60)
        after = len(rc.scan_node(new[1], "dati:rec:*"))
    finally:
        dati.kill()
        rc.restart(victim)
    assert status == 0, err[-3000:]
    nodes = check_live_accounting(rc, stats, want)
    assert nodes[victim]["dropped_disconnected"] > 0, nodes
    assert after > before + 1000, (before, after)   # records reach the promoted replica
    assert cluster_stats(stats)["failovers"] >= 1, cluster_stats(stats)


def test_live_master_hung_then_failed_over(tmp_path, binaries, rc, mid):
    """Live mode, a master (not dati:id's) frozen with SIGSTOP for longer
    than cluster-node-timeout, so that its replica takes over: after 5 s
    without a reply dati drops the connection (its unanswered records counted
    lost), finds the new master and stores that master's slots' records
    there again, never waiting. SIGCONT at the end: the old master rejoins
    as a replica."""
    want, data = mid["want"], mid["data"]
    conf, _ = write_confs(tmp_path, rc.seeds(), extra="REDIS_PIPELINE 200\n")
    victim = next(p for _, p in rc.masters()
                  if (cl.HOST, p) not in (rc.node_for_key("dati:id"), rc.node_for_key("test:sessions")))
    slots = [s for s, e, mp, _ in rc.slot_map() if mp == victim]
    dati = FedDati(["-c", conf, "-t", 2], data, LIVE)   # not -q: its warnings are checked
    node = rc.nodes[victim]
    stopped = False
    try:
        quarter = dati.packets // 4
        paced(dati, quarter)
        wait_stored(rc, records_upto(want, quarter), dati, "first quarter")
        node.proc.send_signal(signal.SIGSTOP)
        stopped = True
        end = time.monotonic() + 30   # a replica promoted: the other masters' map says so
        while rc.node_for_slot(slots[0])[1] == victim:
            assert time.monotonic() < end, "no failover of the frozen master"
            paced(dati, min(dati.sent + 400, 2 * quarter))
            time.sleep(0.2)
        new = rc.node_for_slot(slots[0])[1]
        paced(dati, 2 * quarter)
        time.sleep(6)   # LIVE_STALL_S, then the slot map (at most once a second)
        before = len(rc.scan_node(new, "dati:rec:*"))
        paced(dati, 3 * quarter)
        after = len(rc.scan_node(new, "dati:rec:*"))
        paced(dati, dati.packets)
        status, stats, err = dati.finish(timeout=60)
    finally:
        if stopped:
            node.proc.send_signal(signal.SIGCONT)
        dati.kill()
    rc.wait_healthy(60)
    assert status == 0, err[-3000:]
    nodes = check_live_accounting(rc, stats, want)
    assert nodes[victim]["dropped_queue_full"] > 0, nodes
    assert after > before + 500, (before, after, nodes[victim])   # records reach the promoted replica
    assert cluster_stats(stats)["failovers"] >= 1, cluster_stats(stats)
    assert "no reply for 5 s" in err


def test_live_manual_failover_of_the_id_master(tmp_path, binaries, rc, mid):
    """Live mode, CLUSTER FAILOVER on the replica of dati:id's master (no
    node lost: the old master stays connected and answers MOVED): the id
    requests are redirected, dati asks for the slot map and goes on taking
    ids from the new master; records keep being stored; every record is
    stored or counted. The roles are switched back afterwards."""
    want, data = mid["want"], mid["data"]
    conf, _ = write_confs(tmp_path, rc.seeds(), extra="REDIS_PIPELINE 200\n")
    old = rc.node_for_key("dati:id")[1]
    replica = rc.replicas_of(old)[0][1]
    dati = FedDati(["-c", conf, "-t", 2, "-q"], data, LIVE)
    try:
        third = dati.packets // 3
        paced(dati, third)
        wait_stored(rc, records_upto(want, third), dati, "first third")
        rc.node_client(replica).execute_command("CLUSTER", "FAILOVER")
        end = time.monotonic() + 30
        while rc.node_for_key("dati:id")[1] != replica:
            assert time.monotonic() < end, "CLUSTER FAILOVER did not happen"
            time.sleep(0.1)
        rc.wait_healthy(30)
        paced(dati, dati.packets)
        status, stats, err = dati.finish(timeout=60)
    finally:
        dati.kill()
    assert status == 0, err[-3000:]
    nodes = check_live_accounting(rc, stats, want)
    # ids in hand last 1024-1536 records a worker: without the redirection
    # followed, everything after them would be dropped
    assert stats["records"]["field_dropped"] < len(want.records) // 10, (stats["records"], nodes)
    assert len(rc.scan_node(replica, "dati:rec:*")) > 0
    rc.node_client(old).execute_command("CLUSTER", "FAILOVER")   # back as it was
    end = time.monotonic() + 30
    while rc.node_for_key("dati:id")[1] != old:
        assert time.monotonic() < end, "CLUSTER FAILOVER back did not happen"
        time.sleep(0.1)
    rc.wait_healthy(30)


def test_failover_master_killed_mid_run(tmp_path, binaries, rc, mid):
    """The master holding dati:id killed (SIGKILL) mid-run, its replica
    promoted 2-4 s later (cluster-node-timeout 2000): dati, reading a
    capture, waits for the new master and loses nothing. Last in the module:
    the cluster stays one node short."""
    want, data = mid["want"], mid["data"]
    # REDIS_WAIT_REPLICAS 1: what the master acknowledged is on its replica,
    # or is sent again to the promoted one
    conf, _ = write_confs(tmp_path, rc.seeds(), extra="REDIS_WAIT_REPLICAS 1 1000\n")
    dati = FedDati(["-c", conf, "-t", 2, "-q"], data)
    try:
        half = dati.packets // 2
        dati.feed(half)
        wait_stored(rc, records_upto(want, half), dati, "first half")
        rc.wait_replicated()
        victim = rc.node_for_key("dati:id")[1]
        rc.kill(victim)
        dati.feed(half + (dati.packets - half) // 2)
        new = rc.wait_failover(victim)
        status, stats, err = dati.finish(timeout=60)
    finally:
        dati.kill()
    assert status == 0, err[-3000:]
    assert new != ("127.0.0.1", victim)
    check_hash_records(rc, stats, want)
    cs = cluster_stats(stats)
    assert cs["failovers"] >= 1 and cs["masters"] == 4, cs   # the promoted replica is a 4th
