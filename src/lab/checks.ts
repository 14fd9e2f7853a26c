// Checks a person would run between containers: ping, and a TCP transfer
// whose bytes are hashed on both ends.

import type { Topology, Container } from './topology';

export interface PingResult {
  sent: number;
  received: number;
  /** Median round-trip time in ms (NaN if nothing came back). */
  rttMedianMs: number;
  output: string;
}

/** `ping -c count` from one container to an address; never throws on loss. */
export async function ping(
  topology: Topology,
  from: Container,
  address: string,
  options: { count?: number; intervalS?: number; size?: number; dontFragment?: boolean; timeoutS?: number } = {},
): Promise<PingResult> {
  const count = options.count ?? 3;
  const args = ['ping', '-n', '-c', String(count), '-i', String(options.intervalS ?? 0.2), '-W', String(options.timeoutS ?? 2)];
  if (options.size !== undefined) args.push('-s', String(options.size));
  if (options.dontFragment) args.push('-M', 'do');
  if (address.includes(':')) args.splice(1, 0, '-6');
  args.push(address);
  const result = await topology.exec(from.ns, args, (count * (options.intervalS ?? 0.2) + (options.timeoutS ?? 2) + 5) * 1000);
  const output = result.stdout + result.stderr;
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(output);
  const rtts = [...output.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  return {
    sent: summary ? Number(summary[1]) : 0,
    received: summary ? Number(summary[2]) : 0,
    rttMedianMs: rtts.length ? rtts[Math.floor(rtts.length / 2)] : NaN,
    output,
  };
}

/** Retries a single ping until one answer comes back or the deadline passes. */
export async function waitForPing(topology: Topology, from: Container, address: string, deadlineMs = 10_000): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const result = await ping(topology, from, address, { count: 1, timeoutS: 1 });
    if (result.received === 1) return true;
  }
  return false;
}

export interface TransferResult {
  bytes: number;
  sentSha256: string;
  receivedSha256: string;
  receivedBytes: number;
  seconds: number;
  /** Throughput in Mbit/s as seen by the receiver. */
  mbps: number;
}

const RECEIVER = `
const net = require('net'); const crypto = require('crypto');
const server = net.createServer((socket) => {
  const hash = crypto.createHash('sha256'); let bytes = 0; const start = process.hrtime.bigint();
  socket.on('data', (d) => { hash.update(d); bytes += d.length; });
  socket.on('end', () => {
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    process.stdout.write(JSON.stringify({ bytes, sha256: hash.digest('hex'), seconds }) + '\\n');
    socket.end(); server.close();
  });
});
server.listen(Number(process.argv[1]), process.argv[2], () => process.stderr.write('ready\\n'));
`;

const SENDER = `
const net = require('net'); const crypto = require('crypto');
const total = Number(process.argv[3]); const hash = crypto.createHash('sha256'); let sent = 0;
const socket = net.connect(Number(process.argv[2]), process.argv[1], () => {
  const pump = () => {
    while (sent < total) {
      const chunk = crypto.randomBytes(Math.min(65536, total - sent));
      hash.update(chunk); sent += chunk.length;
      if (!socket.write(chunk)) { socket.once('drain', pump); return; }
    }
    socket.end(() => process.stdout.write(JSON.stringify({ sha256: hash.digest('hex'), bytes: sent }) + '\\n'));
  };
  pump();
});
socket.on('error', (e) => { process.stderr.write(String(e) + '\\n'); process.exit(1); });
`;

/**
 * Sends `bytes` random bytes over TCP from one container to another and
 * returns both hashes. The caller asserts they match.
 */
export async function tcpTransfer(
  topology: Topology,
  from: Container,
  to: Container,
  options: { bytes?: number; port?: number; ipv6?: boolean; timeoutMs?: number } = {},
): Promise<TransferResult> {
  const bytes = options.bytes ?? 20 * 1024 * 1024;
  const port = options.port ?? 5001;
  const address = options.ipv6 ? to.ip6 : to.ip;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const receiver = topology.spawn(to.ns, [process.execPath, '-e', RECEIVER, String(port), address]);
  let receiverOut = '';
  receiver.stdout?.setEncoding('utf8');
  receiver.stdout?.on('data', (d: string) => (receiverOut += d));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('receiver did not start')), 10_000);
      receiver.stderr?.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      receiver.once('exit', (code) => reject(new Error(`receiver exited ${code}`)));
    });
    const sender = await topology.exec(from.ns, [process.execPath, '-e', SENDER, address, String(port), String(bytes)], timeoutMs);
    if (sender.code !== 0) throw new Error(`transfer from ${from.ns} to ${address} failed: ${sender.stderr.trim()}`);
    const sent = JSON.parse(sender.stdout.trim()) as { sha256: string; bytes: number };
    await new Promise<void>((resolve, reject) => {
      if (receiver.exitCode !== null) return resolve();
      const timer = setTimeout(() => reject(new Error('receiver did not finish')), 10_000);
      receiver.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    const got = JSON.parse(receiverOut.trim()) as { bytes: number; sha256: string; seconds: number };
    return {
      bytes: sent.bytes,
      sentSha256: sent.sha256,
      receivedSha256: got.sha256,
      receivedBytes: got.bytes,
      seconds: got.seconds,
      mbps: (got.bytes * 8) / got.seconds / 1e6,
    };
  } finally {
    if (receiver.exitCode === null) receiver.kill('SIGKILL');
  }
}
