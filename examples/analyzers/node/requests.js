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
// --idle-exit N ends after N seconds without a message and prints the totals.
'use strict';
const { createClient, createCluster } = require('redis');

function options(argv) {
  const o = { socket: null, host: '127.0.0.1', port: 6379, cluster: null, password: null,
              channel: 'http',
              sessions: 'dati:sessions', period: 10, idleExit: 0 };
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

  await subscriber.subscribe(o.channel, (key) => {
    requests++;
    lastMessage = Date.now();
    const p = hashes.hGetAll(key).then((h) => {
      if (h['http.host']) hosts.set(h['http.host'], (hosts.get(h['http.host']) || 0) + 1);
    });
    pending.add(p);
    p.finally(() => pending.delete(p));
  });
  await subscriber.subscribe(o.sessions, (message) => {
    JSON.parse(message);   // a flow record: counters, filters, reason
    sessions++;
    lastMessage = Date.now();
  });
  console.log(`subscribed to ${o.channel} and ${o.sessions}`);

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
      clearInterval(timer);
      publishStats();
      await Promise.all([...pending]);
      console.log(`total requests ${totalRequests} sessions ${totalSessions}`);
      for (const [host, n] of [...hosts].sort((a, b) => b[1] - a[1]))
        console.log(`top host ${n} ${host}`);
      if (subscriber !== hashes) await subscriber.quit();
      await hashes.quit();
    }, 200);
  }
}

main().catch((e) => { console.error(`requests.js: ${e.message}`); process.exit(1); });
