#!/usr/bin/env node
// Container healthcheck for the ganfleet images (Docker HEALTHCHECK, Compose `healthcheck`).
//
// It reads the command line of the container's main process (PID 1, or GANFLEET_HEALTHCHECK_PID) and:
//  - for `ganfleet coordinator ...`: GETs /healthz on the port (--port, default 8787) and scheme
//    (https when --tls-cert is given) that process listens on; healthy on 200;
//  - for anything else (a worker has no HTTP port): healthy while the process exists. Docker already
//    knows that much, so for workers this check adds nothing, and says so in its output.
// No dependency beyond Node itself, so it runs in both images.
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

const pid = process.env.GANFLEET_HEALTHCHECK_PID ?? '1';
let argv;
try {
  argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    .split('\0')
    .filter((a) => a !== '');
} catch (err) {
  console.log(`unhealthy: cannot read the command line of process ${pid}: ${err.message}`);
  process.exit(1);
}

/** The value of `--name V` or `--name=V` in argv (the last one wins, as in the CLI). */
function flag(name) {
  let value;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}` && i + 1 < argv.length) value = argv[i + 1];
    else if (argv[i].startsWith(`--${name}=`)) value = argv[i].slice(name.length + 3);
  }
  return value;
}

// The ganfleet subcommand: the first of these words on the command line (node, main.js and flags come
// first or after).
const command = argv.find((a) => a === 'coordinator' || a === 'worker' || a === 'local');
if (command !== 'coordinator') {
  const what = argv.slice(0, 3).join(' ');
  console.log(`healthy: process ${pid} is not a coordinator (${what}); nothing to probe beyond its existence`);
  process.exit(0);
}

const port = Number(flag('port') ?? 8787);
const listen = flag('host') ?? '127.0.0.1';
// A wildcard listener answers on loopback; a specific address only on that address.
const host = listen === '0.0.0.0' || listen === '::' ? '127.0.0.1' : listen;
const tls = flag('tls-cert') !== undefined;
const request = tls ? httpsRequest : httpRequest;
// With TLS the check asks the local process whether it is alive, not who it is: no certificate check.
const req = request(
  { host, port, path: '/healthz', method: 'GET', timeout: 4000, rejectUnauthorized: false },
  (res) => {
    res.resume();
    const verdict = res.statusCode === 200 ? 'healthy' : 'unhealthy';
    console.log(`${verdict}: GET ${tls ? 'https' : 'http'}://${host}:${port}/healthz -> ${res.statusCode}`);
    process.exit(res.statusCode === 200 ? 0 : 1);
  },
);
req.on('timeout', () => req.destroy(new Error('timed out after 4 s')));
req.on('error', (err) => {
  console.log(`unhealthy: GET ${tls ? 'https' : 'http'}://${host}:${port}/healthz failed: ${err.message}`);
  process.exit(1);
});
req.end();
