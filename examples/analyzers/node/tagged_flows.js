// tagged_flows.js - prints the flow records that carry tags (set by
// analyzers through dati's feedback channel), one line per flow:
//   <flow id> <client>:<port> -> <server>:<port> <packets> packets [tags]
//
//   npm install && node tagged_flows.js --socket /tmp/redis.sock --sessions dati:sessions
//
// --idle-exit N ends after N seconds without a message and prints the totals.
'use strict';
const { createClient } = require('redis');

function options(argv) {
  const o = { socket: null, host: '127.0.0.1', port: 6379, password: null,
              sessions: 'dati:sessions', idleExit: 0 };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-(.)/g, (_, c) => c.toUpperCase());
    if (!(key in o)) throw new Error(`unknown option ${argv[i]}`);
    o[key] = typeof o[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return o;
}

async function main() {
  const o = options(process.argv);
  const conf = { socket: o.socket ? { path: o.socket } : { host: o.host, port: o.port } };
  if (o.password) conf.password = o.password;
  const subscriber = createClient(conf);
  await subscriber.connect();
  let flows = 0, tagged = 0, lastMessage = Date.now();
  await subscriber.subscribe(o.sessions, (message) => {
    lastMessage = Date.now();
    flows++;
    const f = JSON.parse(message);
    if (!f.tags) return;
    tagged++;
    const packets = f.c2s_packets + f.s2c_packets;
    console.log(`${f.flow} ${f.client}:${f.client_port} -> ${f.server}:${f.server_port} ` +
                `${packets} packets [${f.tags.join(',')}]`);
  });
  console.log(`subscribed to ${o.sessions}`);
  if (o.idleExit > 0) {
    const timer = setInterval(async () => {
      if (Date.now() - lastMessage < o.idleExit * 1000) return;
      clearInterval(timer);
      console.log(`flows ${flows} tagged ${tagged}`);
      await subscriber.quit();
    }, 100);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
