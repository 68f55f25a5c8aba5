"""A real Redis Cluster on loopback for the integration tests.

Cluster(directory) starts 2 * masters redis-server processes (cluster-enabled,
no persistence, each in a subdirectory of its own with its config, nodes.conf
and log), each on a free 127.0.0.1 port with its cluster bus on another free
port (cluster-port), creates the cluster with

    redis-cli --cluster create 127.0.0.1:P1 ... 127.0.0.1:P6 --cluster-replicas 1 --cluster-yes

and waits until every node agrees. stop() ends every server by its pid
(SIGTERM, SIGKILL after 5 s). Use it as a context manager or through a
pytest fixture that calls stop() in a finally.

Slots follow the cluster specification: keyslot() is CRC16-XMODEM of the key
(or of its first non-empty {hash tag}) mod 16384; migrate_slots() is the
spec's resharding sequence (SETSLOT IMPORTING / MIGRATING, GETKEYSINSLOT +
MIGRATE, SETSLOT NODE), with hooks to let a client write between the steps.

Only redis-py (python3-redis >= 4.1, for redis.cluster) and the redis-server
and redis-cli binaries are needed."""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import ClusterNode, RedisCluster

HOST = "127.0.0.1"
SLOTS = 16384


# ---------------------------------------------------------------- key slots

def _crc16_table():
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC16 = _crc16_table()


def crc16(data):
    """CRC16-XMODEM (poly 0x1021, init 0), the cluster specification's."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ b) & 0xFF]
    return crc


def keyslot(key):
    """The slot of key (str or bytes): CRC16 of the part between the first
    '{' and the first '}' after it when that part is not empty, else of the
    whole key; mod 16384."""
    if isinstance(key, str):
        key = key.encode()
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    return crc16(key) % SLOTS


def shard_tags(n):
    """For REDIS_STREAM_SHARDS n: tag t of each shard s, the smallest t >= 0
    whose slot (of the decimal text t) lies in [s*16384/n, (s+1)*16384/n)."""
    tags = []
    for s in range(n):
        lo, hi = s * SLOTS // n, (s + 1) * SLOTS // n
        t = 0
        while not lo <= keyslot(str(t)) < hi:
            t += 1
        tags.append(t)
    return tags


def shard_keys(channel, n):
    """The stream keys of a channel with n shards (the plain channel for 1)."""
    if n == 1:
        return [channel]
    return [f"{channel}:{{{t}}}" for t in shard_tags(n)]


# ---------------------------------------------------------------- ports

def free_ports(n):
    """n distinct loopback TCP ports free at the time of the call."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def closed_ports(n):
    """n loopback ports where nothing listens (connections are refused)."""
    return free_ports(n)


# ---------------------------------------------------------------- the cluster

class ClusterError(AssertionError):
    pass


class Node:
    def __init__(self, port, bus_port, directory):
        self.port, self.bus_port, self.dir = port, bus_port, Path(directory)
        self.proc = None
        self.log_file = None

    @property
    def addr(self):
        return (HOST, self.port)

    @property
    def log(self):
        return self.dir / "redis.log"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=2000):
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"


class Cluster:
    """masters * (1 + replicas) redis-server processes forming one cluster."""

    def __init__(self, directory, masters=3, replicas=1, password=None, node_timeout=2000,
                 start_timeout=30):
        self.dir = Path(directory)
        self.n_masters, self.n_replicas = masters, replicas
        self.password = password
        self.node_timeout = node_timeout
        self.start_timeout = start_timeout
        self.nodes = {}          # port -> Node
        self._clients = {}       # port -> redis.Redis
        self._rc = None
        self._all_rc = []        # every RedisCluster made, closed by stop()
        self.dead_slots = {}     # port of a killed master -> its slots
        self.timings = {}

    # ------------------------------------------------------------ processes

    def _config(self, node):
        lines = [
            f"port {node.port}",
            f"bind {HOST}",
            f"cluster-port {node.bus_port}",
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {self.node_timeout}",
            f"cluster-announce-ip {HOST}",
            f"dir {node.dir}",
            "appendonly no",
            'save ""',
            "daemonize no",
            "repl-diskless-sync-delay 0",   # replicas in sync at once, not 5 s later
            'logfile ""',
        ]
        if self.password:
            lines += [f"requirepass {self.password}", f"masterauth {self.password}"]
        return "\n".join(lines) + "\n"

    def _spawn(self, node):
        node.dir.mkdir(parents=True, exist_ok=True)
        conf = node.dir / "redis.conf"
        conf.write_text(self._config(node))
        node.log_file = open(node.log, "ab")
        node.proc = subprocess.Popen(["redis-server", str(conf)], cwd=node.dir,
                                     stdin=subprocess.DEVNULL, stdout=node.log_file,
                                     stderr=subprocess.STDOUT)

    def _wait_ping(self, node, timeout=10):
        c = self._raw_client(node.port)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if node.proc.poll() is not None:
                return False
            try:
                if c.ping():
                    return True
            except redis.exceptions.ConnectionError:
                pass
            time.sleep(0.02)
        return False

    def _start_node(self, index):
        """Starts one node on fresh free ports (a few tries: a port found
        free may be taken before redis-server binds it)."""
        for attempt in range(5):
            port, bus = free_ports(2)
            node = Node(port, bus, self.dir / f"node{index}")
            self._spawn(node)
            if self._wait_ping(node):
                return node
            self._terminate(node)
            self._drop_client(port)
        raise ClusterError(f"redis-server did not start (node {index}): {node.log_tail()}")

    def start(self):
        """Starts the servers, creates the cluster, waits until it is healthy.
        On failure everything started is stopped and ClusterError raised."""
        t0 = time.monotonic()
        try:
            for i in range(self.n_masters * (1 + self.n_replicas)):
                node = self._start_node(i)
                self.nodes[node.port] = node
            self.timings["servers"] = time.monotonic() - t0
            addrs = [f"{HOST}:{p}" for p in self.nodes]
            self.create_cmd = ["redis-cli", "--cluster", "create", *addrs,
                               "--cluster-replicas", str(self.n_replicas), "--cluster-yes"]
            env = dict(os.environ)
            if self.password:
                env["REDISCLI_AUTH"] = self.password
            p = subprocess.run(self.create_cmd, capture_output=True, text=True, timeout=120,
                               env=env, stdin=subprocess.DEVNULL)
            self.create_output = p.stdout + p.stderr
            if p.returncode != 0 or "All 16384 slots covered" not in p.stdout:
                raise ClusterError(f"{' '.join(self.create_cmd)}: exit {p.returncode}\n"
                                   f"{self.create_output[-3000:]}")
            self.timings["create"] = time.monotonic() - t0
            self.wait_healthy(self.start_timeout)
            self.timings["healthy"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def _terminate(self, node, timeout=5):
        if node.proc is not None and node.proc.poll() is None:
            try:
                os.kill(node.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                node.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(node.proc.pid, signal.SIGKILL)
                node.proc.wait(timeout=10)
        if node.log_file:
            node.log_file.close()
            node.log_file = None

    def stop(self):
        """Ends every server by its pid: SIGTERM to all, then SIGKILL to any
        still running 5 s later. Safe to call twice."""
        self._close_clients()
        live = [n for n in self.nodes.values() if n.alive()]
        for n in live:
            try:
                os.kill(n.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 5
        for n in live:
            try:
                n.proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(n.proc.pid, signal.SIGKILL)
                n.proc.wait(timeout=10)
        for n in self.nodes.values():
            if n.proc is not None:
                n.proc.poll()
            if n.log_file:
                n.log_file.close()
                n.log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def kill(self, port):
        """SIGKILL to one node, by its pid (no goodbye to the cluster)."""
        node = self.nodes[port]
        self.dead_slots[port] = [slot for start, end, mp, _ in self.slot_map() if mp == port
                                 for slot in range(start, end + 1)]
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait(timeout=10)
        node.log_file.close()
        node.log_file = None
        self._drop_client(port)

    def restart(self, port, timeout=30):
        """Starts a stopped node again on its ports, with its nodes.conf: it
        rejoins the cluster (a failed-over master comes back as a replica)."""
        node = self.nodes[port]
        assert not node.alive(), f"node {port} is running"
        self._spawn(node)
        if not self._wait_ping(node):
            raise ClusterError(f"node {port} did not restart: {node.log_tail()}")
        self.dead_slots.pop(port, None)
        self.wait_healthy(timeout)

    def wait_failover(self, port, timeout=30):
        """After kill(port) of a master: waits until a replica has taken over
        each of its slots and the live nodes agree again; returns the new
        owner (host, port)."""
        slots = self.dead_slots[port]
        self.wait_healthy(timeout)
        owners = {self.node_for_slot(s) for s in slots[:1] + slots[-1:]}
        assert len(owners) == 1 and (HOST, port) not in owners, owners
        return owners.pop()

    # ------------------------------------------------------------ clients

    def _raw_client(self, port):
        c = self._clients.get(port)
        if c is None:
            c = redis.Redis(host=HOST, port=port, password=self.password, socket_timeout=10,
                            socket_connect_timeout=2)
            self._clients[port] = c
        return c

    def _drop_client(self, port):
        """Forgets the node's client, and the cached RedisCluster (the next
        client() builds a new one; a caller's old one stays usable)."""
        c = self._clients.pop(port, None)
        if c is not None:
            c.close()
        self._rc = None

    def _close_clients(self):
        for port in list(self._clients):
            self._drop_client(port)
        for c in self._all_rc:
            try:
                c.close()
            except Exception:
                pass
        self._all_rc = []

    def node_client(self, port):
        """A plain redis.Redis to one node (port or (host, port))."""
        if isinstance(port, tuple):
            port = port[1]
        return self._raw_client(port)

    def client(self):
        """A redis.cluster.RedisCluster over the live nodes (cached)."""
        if self._rc is None:
            self._rc = RedisCluster(startup_nodes=[ClusterNode(HOST, p) for p in self.live_ports()],
                                    password=self.password, socket_timeout=10)
            self._all_rc.append(self._rc)
        return self._rc

    def live_ports(self):
        return [p for p, n in self.nodes.items() if n.alive()]

    def seeds(self, nodes=None):
        """'127.0.0.1:P ...' for the config's REDIS_CLUSTER (default: the masters)."""
        return " ".join(f"{h}:{p}" for h, p in (nodes or self.masters()))

    def node_id(self, port):
        return self.node_client(port).execute_command("CLUSTER MYID").decode()

    # ------------------------------------------------------------ topology

    def slot_map(self, port=None):
        """[(start, end, master port, (replica ports...))] from CLUSTER SLOTS
        of one node (default: the first live node), sorted."""
        port = port or self.live_ports()[0]
        out = []
        for entry in self.node_client(port).execute_command("CLUSTER SLOTS"):
            start, end, master, *reps = entry
            out.append((int(start), int(end), int(master[1]),
                        tuple(sorted(int(r[1]) for r in reps))))
        return sorted(out)

    def cluster_nodes(self, port):
        """CLUSTER NODES of one node: {port: (set of flags, master id, node id)}."""
        raw = self.node_client(port).execute_command("CLUSTER NODES")
        if isinstance(raw, bytes):
            raw = raw.decode()
        if isinstance(raw, dict):   # redis-py parses it: {"ip:port": {...}}
            return {int(addr.rsplit(":", 1)[1].split("@")[0]):
                    (set(v["flags"].split(",")), v["master_id"], v["node_id"])
                    for addr, v in raw.items()}
        out = {}
        for line in raw.splitlines():
            parts = line.split()
            out[int(parts[1].split("@")[0].rsplit(":", 1)[1])] = \
                (set(parts[2].split(",")), parts[3], parts[0])
        return out

    def _open_slots(self, port):
        """Slots this node has in MIGRATING or IMPORTING state."""
        raw = self.node_client(port).execute_command("CLUSTER NODES")
        if isinstance(raw, dict):
            return [m for v in raw.values() if "myself" in v["flags"] for m in v["migrations"]]
        return [w for line in raw.decode().splitlines() if "myself" in line.split()[2]
                for w in line.split()[8:] if w.startswith("[")]

    def _health_problem(self):
        """None when healthy, else what is not yet (for the error message)."""
        live = self.live_ports()
        maps, roles = {}, {}
        for p in live:
            try:
                info = self.node_client(p).execute_command("CLUSTER INFO")
            except redis.exceptions.RedisError as e:
                return f"{p}: {e}"
            state = info.get("cluster_state") if isinstance(info, dict) else \
                dict(l.split(":", 1) for l in info.decode().splitlines() if ":" in l).get(
                    "cluster_state")
            if state != "ok":
                return f"{p}: cluster_state:{state}"
            view = self.cluster_nodes(p)
            open_slots = self._open_slots(p)
            if open_slots:
                return f"{p} has slots importing/migrating: {open_slots[:5]}"
            for q in live:
                if q not in view:
                    return f"{p} does not know {q}"
                bad = view[q][0] & {"fail", "fail?", "handshake", "noaddr"}
                if bad:
                    return f"{p} sees {q} as {','.join(sorted(bad))}"
            maps[p] = self.slot_map(p)
            # roles: who is whose replica, the same in every view
            roles[p] = {q: ("master" if "master" in view[q][0] else "slave", view[q][1])
                        for q in live}
        first = maps[live[0]]
        for p, m in maps.items():
            if m != first:
                return f"slot maps differ: {live[0]} {first} / {p} {m}"
        covered = sum(e - s + 1 for s, e, _, _ in first)
        if covered != SLOTS:
            return f"{covered} slots covered"
        if any(mp not in live for _, _, mp, _ in first):
            return "a dead node still owns slots"
        owners = {mp for _, _, mp, _ in first}
        for p, r in roles.items():
            if r != roles[live[0]]:
                return f"roles differ: {live[0]} {roles[live[0]]} / {p} {r}"
            for q, (role, _) in r.items():
                if (role == "master") != (q in owners):
                    return f"{p} sees {q} as {role}"
        for p in live:   # replicas in sync (ready to take over)
            r = self.node_client(p).info("replication")
            if r.get("role") == "slave" and r.get("master_link_status") != "up":
                return f"replica {p}: link to its master is {r.get('master_link_status')}"
        return None

    def wait_healthy(self, timeout=30):
        """Until every live node says cluster_state:ok, knows every other live
        node as healthy, and all agree on the slot map (masters and replicas);
        each replica's link to its master up."""
        end = time.monotonic() + timeout
        while True:
            problem = self._health_problem()
            if problem is None:
                return
            if time.monotonic() > end:
                raise ClusterError(f"cluster not healthy after {timeout} s: {problem}")
            time.sleep(0.05)

    def masters(self):
        """[(host, port)] of the masters owning slots, by their first slot."""
        seen = []
        for _, _, mp, _ in self.slot_map():
            if (HOST, mp) not in seen:
                seen.append((HOST, mp))
        return seen

    def replicas(self):
        """[(host, port)] of the live replicas."""
        view = self.cluster_nodes(self.live_ports()[0])
        return [(HOST, p) for p in self.live_ports() if p in view and "slave" in view[p][0]]

    def replicas_of(self, port):
        return [(HOST, p) for p in self.live_ports()
                if self.node_client(p).info("replication").get("master_port") == port
                and self.node_client(p).info("replication").get("role") == "slave"]

    def node_for_slot(self, slot):
        """(host, port) of the master owning slot, in the first live node's map."""
        for s, e, mp, _ in self.slot_map():
            if s <= slot <= e:
                return (HOST, mp)
        raise ClusterError(f"slot {slot} has no owner")

    def node_for_key(self, key):
        return self.node_for_slot(keyslot(key))

    def owner_table(self):
        """[port of the master owning slot s for s in 0..16383] (one query)."""
        table = [None] * SLOTS
        for s, e, mp, _ in self.slot_map():
            table[s:e + 1] = [mp] * (e - s + 1)
        return table

    def wait_replicated(self, timeout=10):
        """Until every live replica has applied all its master has written
        (offsets equal), e.g. before a kill that must lose nothing."""
        end = time.monotonic() + timeout
        while True:
            lag = []
            for p in self.live_ports():
                r = self.node_client(p).info("replication")
                if r.get("role") == "master":
                    for k, v in r.items():
                        if k.startswith("slave") and isinstance(v, dict) and \
                                v.get("offset") != r["master_repl_offset"]:
                            lag.append((p, v.get("port"), r["master_repl_offset"] - v["offset"]))
            if not lag:
                return
            if time.monotonic() > end:
                raise ClusterError(f"replicas behind after {timeout} s: {lag}")
            time.sleep(0.05)

    # ------------------------------------------------------------ data

    def flushall(self):
        for h, p in self.masters():
            self.node_client(p).flushall()

    def dbsize(self):
        """{(host, port): DBSIZE} of each master."""
        return {(h, p): self.node_client(p).dbsize() for h, p in self.masters()}

    def scan_node(self, port, pattern="*"):
        return list(self.node_client(port).scan_iter(match=pattern, count=10000))

    def count_keys(self, pattern="*"):
        """{(host, port): keys matching pattern} of each master."""
        return {(h, p): len(self.scan_node(p, pattern)) for h, p in self.masters()}

    def scan_all(self, pattern="*"):
        """Keys matching pattern on every master (bytes)."""
        keys = []
        for _, p in self.masters():
            keys.extend(self.scan_node(p, pattern))
        return keys

    def set_password(self, password):
        """CONFIG SET masterauth and requirepass on every live node (None or
        '' removes them); the harness's own clients use it from then on."""
        pw = password or ""
        for p in self.live_ports():
            c = self.node_client(p)
            if pw:
                c.config_set("masterauth", pw)
                c.config_set("requirepass", pw)
            else:
                c.config_set("requirepass", "")
                c.config_set("masterauth", "")
        self._close_clients()
        self.password = password or None

    # ------------------------------------------------------------ resharding

    def migrate_slot(self, slot, src_port, dst_port, **kw):
        return self.migrate_slots([slot], src_port, dst_port, **kw)

    def migrate_slots(self, slots, src_port, dst_port, pause=0.0, on_step=None, batch=100,
                      timeout_ms=5000, wait=True):
        """Moves slots (all owned by src) to dst, as the cluster specification
        does it, each step for every slot before the next step:

          1. dst: CLUSTER SETSLOT <slot> IMPORTING <src-id>
          2. src: CLUSTER SETSLOT <slot> MIGRATING <dst-id>
             -> on_step("migrating"), sleep(pause)   (new keys: ASK to dst)
          3. src: loop CLUSTER GETKEYSINSLOT <slot> <batch>
                       MIGRATE 127.0.0.1 <dst> "" 0 <timeout> [AUTH pw] KEYS k...
             -> on_step("keys_moved"), sleep(pause)  (every key of the slot: ASK)
          4. CLUSTER SETSLOT <slot> NODE <dst-id> on dst, src, then the other masters
             -> on_step("node")                      (clients with the old map: MOVED)

        then (wait) until every node agrees on the new map. Returns the
        number of keys moved."""
        src_port = src_port[1] if isinstance(src_port, tuple) else src_port
        dst_port = dst_port[1] if isinstance(dst_port, tuple) else dst_port
        src, dst = self.node_client(src_port), self.node_client(dst_port)
        src_id, dst_id = self.node_id(src_port), self.node_id(dst_port)
        for slot in slots:
            owner = self.node_for_slot(slot)[1]
            assert owner == src_port, f"slot {slot} is on {owner}, not {src_port}"

        failed = []

        def step(name):
            # a failing hook (e.g. a test's assertion) does not leave the
            # slots half-migrated: the migration completes, then it is raised
            if on_step and not failed:
                try:
                    on_step(name)
                except BaseException as e:
                    failed.append(e)
            if pause and name != "node" and not failed:
                time.sleep(pause)

        for slot in slots:
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        for slot in slots:
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        step("migrating")
        moved = 0
        auth = ["AUTH", self.password] if self.password else []
        for slot in slots:
            while True:
                keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, batch)
                if not keys:
                    break
                r = src.execute_command("MIGRATE", HOST, dst_port, "", 0, timeout_ms, *auth,
                                        "KEYS", *keys)
                if r not in (b"OK", b"NOKEY", "OK", "NOKEY", True):
                    raise ClusterError(f"MIGRATE of slot {slot}: {r!r}")
                moved += len(keys)
        step("keys_moved")
        others = [p for _, p in self.masters() if p not in (src_port, dst_port)]
        for slot in slots:
            for p in [dst_port, src_port] + others:
                self.node_client(p).execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        step("node")
        if wait:
            self.wait_healthy()
        if failed:
            raise failed[0]
        return moved
