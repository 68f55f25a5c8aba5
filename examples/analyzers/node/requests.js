// requests.js - the seed's Node.js analyzer, against dati: subscribes to a
// filter's channel (record keys) and to the session channel (flow records),
// reads each record's hash, and prints requests and sessions per period.
//
//   npm install && node requests.js --socket /tmp/redis.sock --channel http
//   node requests.js --cluster 127.0.0.1:7000,127.0.0.1:7001 --channel http
//
// --cluster takes seed nodes of a Redis Cluster (node-redis' createCluster):
// the hashes are read from the master of each key's slot; PUBLISH reaches
// every node, so the subscription is on one of them.
//
// --streams 1 reads the stream layout (REDIS_MODE stream) instead: every
// shard of the channels that dati:streams lists (REDIS_STREAM_SHARDS), in the
// consumer group --group as --consumer, each entry acknowledged (XACK).
//
// --idle-exit N ends after N seconds without a message and prints the totals.
'use strict';
const { createClient, createCluster } = require('redis');

function options(argv) {
  const o = { socket: null, host: '127.0.0.1', port: 6379, cluster: null, password: null,
              channel: 'http',
              sessions: 'dati:sessions', period: 10, idleExit: 0, streams: 0,
              group: 'requests', consumer: 'c1' };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-(.)/g, (_, c) => c.toUpperCase());
    if (!(key in o)) throw new Error(`unknown option ${argv[i]}`);
    o[key] = typeof o[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return o;
}

async function main() {
  const o = options(process.argv);
  let hashes, subscriber;
  if (o.cluster) {
    hashes = createCluster({
      rootNodes: o.cluster.split(',').map((hp) => ({ url: `redis://${hp}` })),
      defaults: o.password ? { password: o.password } : {},
    });
    await hashes.connect();
    subscriber = hashes;   // the cluster client subscribes on a node of its own
  } else {
    const conf = { socket: o.socket ? { path: o.socket } : { host: o.host, port: o.port } };
    if (o.password) conf.password = o.password;
    hashes = createClient(conf);
    subscriber = hashes.duplicate();
    await hashes.connect();
    await subscriber.connect();
  }

  let requests = 0, sessions = 0, totalRequests = 0, totalSessions = 0;
  let lastMessage = Date.now();
  const hosts = new Map();
  const pending = new Set();

  const countHost = (h) => {
    if (h['http.host']) hosts.set(h['http.host'], (hosts.get(h['http.host']) || 0) + 1);
  };
  const onSession = (json) => {
    JSON.parse(json);   // a flow record: counters, filters, reason
    sessions++;
    lastMessage = Date.now();
  };
  let running = true;
  if (o.streams) {
    // the shard keys of each channel (dati:streams), or the channel itself
    const shards = async (ch) => ((await hashes.hGet('dati:streams', ch)) || ch).split(',');
    const keys = [...(await shards(o.channel)).map((k) => [o.channel, k]),
                  ...(await shards(o.sessions)).map((k) => [o.sessions, k])];
    for (const [, key] of keys) {
      try {
        await hashes.xGroupCreate(key, o.group, '0', { MKSTREAM: true });
      } catch (e) {
        if (!String(e.message).includes('BUSYGROUP')) throw e;
      }
    }
    console.log(`reading ${keys.length} streams in group ${o.group}`);
    // one shard at a time: in a cluster they are on different masters
    const loop = (async () => {
      while (running) {
        let got = 0;
        for (const [ch, key] of keys) {
          const reply = await hashes.xReadGroup(o.group, o.consumer, { key, id: '>' },
                                                { COUNT: 500 });
          for (const { messages } of reply || []) {
            for (const { id, message } of messages) {
              got++;
              if (ch === o.sessions) {
                onSession(message.flow);
              } else {
                requests++;
                lastMessage = Date.now();
                countHost(message);
              }
              await hashes.xAck(key, o.group, id);
            }
          }
        }
        if (!got) await new Promise((r) => setTimeout(r, 100));
      }
    })();
    pending.add(loop);
  } else {
    await subscriber.subscribe(o.channel, (key) => {
      requests++;
      lastMessage = Date.now();
      const p = hashes.hGetAll(key).then(countHost);
      pending.add(p);
      p.finally(() => pending.delete(p));
    });
    await subscriber.subscribe(o.sessions, onSession);
    console.log(`subscribed to ${o.channel} and ${o.sessions}`);
  }

  const publishStats = () => {
    console.log(`Requests:${requests} Sessions:${sessions}`);
    totalRequests += requests;
    totalSessions += sessions;
    requests = 0;
    sessions = 0;
  };
  const timer = setInterval(publishStats, o.period * 1000);
  if (o.idleExit > 0) {
    const idle = setInterval(async () => {
      if (Date.now() - lastMessage < o.idleExit * 1000) return;
      clearInterval(idle);
      running = false;
      await Promise.all([...pending]);
      clearInterval(timer);
      publishStats();
      console.log(`total requests ${totalRequests} sessions ${totalSessions}`);
      for (const [host, n] of [...hosts].sort((a, b) => b[1] - a[1]))
        console.log(`top host ${n} ${host}`);
      if (subscriber !== hashes) await subscriber.quit();
      await hashes.quit();
    }, 200);
  }
}

main().catch((e) => { console.error(`requests.js: ${e.message}`); process.exit(1); });
