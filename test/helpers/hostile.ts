// Helpers of the hardening tests (hostile input, faults, load): what a running
// daemon says about itself (`tsvtep status --json`, run in its namespace),
// what the kernel says about it (/proc), raw frames from a container, and
// the daemon's log as JSON lines.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import type { NetworkCounters } from '../../src/core/counters';
import { CLI_PATH, type DaemonProcess } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';

/**
 * Compiles the fuzzer (fuzz.ts, which needs only node's own modules) into dir
 * and returns the script's path, for `node SCRIPT` inside a namespace.
 */
export function buildFuzzer(dir: string): string {
  const source = readFileSync(path.join(__dirname, 'fuzz.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
  const script = path.join(dir, 'fuzz.js');
  writeFileSync(script, outputText);
  return script;
}

export interface NetworkStatus {
  vni: number;
  tap: string;
  fdbEntries: number;
  fdbLimit: number;
  counters: NetworkCounters;
}

export interface Status {
  networks: NetworkStatus[];
  engine: { rxDatagrams: number; drops: { bad_header: number; unknown_vni: number } };
}

/** `tsvtep status --json` in ns: the daemon's networks and counters. */
export async function status(topology: Topology, ns: string): Promise<Status> {
  return JSON.parse(await topology.execOk(ns, [process.execPath, CLI_PATH, 'status', '--json'], 15_000)) as Status;
}

export function network(s: Status, vni: number): NetworkStatus {
  const found = s.networks.find((n) => n.vni === vni);
  if (!found) throw new Error(`no VNI ${vni} in ${JSON.stringify(s)}`);
  return found;
}

/** `tsvtep peers --json` in ns: datagrams sent to each peer, keyed by address. */
export async function peerTx(topology: Topology, ns: string): Promise<Map<string, number>> {
  const reply = JSON.parse(await topology.execOk(ns, [process.execPath, CLI_PATH, 'peers', '--json'], 15_000)) as {
    peers: { address: string; txDatagrams: number }[];
  };
  return new Map(reply.peers.map((p) => [p.address, p.txDatagrams]));
}

/** /proc/net/snmp of namespace ns, as 'Udp:InDatagrams' -> value. */
export async function snmp(topology: Topology, ns: string): Promise<Record<string, number>> {
  const lines = (await topology.execOk(ns, ['cat', '/proc/net/snmp'])).trim().split('\n');
  const out: Record<string, number> = {};
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const keys = lines[i].split(/\s+/);
    const values = lines[i + 1].split(/\s+/);
    for (let j = 1; j < keys.length; j++) out[`${keys[0]}${keys[j]}`] = Number(values[j]);
  }
  return out;
}

/** A link's packet counters in ns (`ip -s -j link show`). */
export async function linkStats(topology: Topology, ns: string, link: string): Promise<{ txPackets: number; txDropped: number }> {
  const [info] = JSON.parse(await topology.execOk(ns, ['ip', '-s', '-j', 'link', 'show', 'dev', link])) as {
    stats64: { tx: { packets: number; dropped: number } };
  }[];
  return { txPackets: info.stats64.tx.packets, txDropped: info.stats64.tx.dropped };
}

export async function linkExists(topology: Topology, ns: string, link: string): Promise<boolean> {
  return (await topology.exec(ns, ['ip', 'link', 'show', 'dev', link])).code === 0;
}

/** Resident memory of a process, MiB, and its peak. */
export function memoryOf(pid: number): { rssMb: number; hwmMb: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** utime + stime of a process, in seconds (clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** The daemon's log so far, as JSON lines (anything else it printed is left out). */
export function logLines(daemon: DaemonProcess): LogLine[] {
  return daemon
    .log()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

export function linesMatching(daemon: DaemonProcess, pattern: RegExp): LogLine[] {
  return logLines(daemon).filter((line) => pattern.test(line.msg));
}

/** Polls until check() holds; false if it does not by the deadline. */
export async function eventually(check: () => boolean | Promise<boolean>, deadlineMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the exit code once the daemon has exited, or undefined after deadlineMs. */
export function exitOf(daemon: DaemonProcess, deadlineMs: number): Promise<number | null | undefined> {
  const child = daemon.child;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), deadlineMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/**
 * Writes Ethernet frames with a raw (AF_PACKET) socket: dst, a source MAC
 * 02:f0:<first+i as 4 bytes> per frame (so every frame's source is new),
 * ethertype 0x88b5 (local experimental; nobody answers it). A pause of 1 ms
 * every pauseEvery frames lets the receiving side keep up (0: none).
 * Prints {"sent": N, "seconds": S}.
 */
const RAW_SENDER = `
import errno, json, socket, sys, time
ifname, dst_text, count, first, pause_every, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
dst = bytes.fromhex(dst_text.replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
tail = b'\\x88\\xb5' + bytes(46)
sent = 0
start = time.time()
for i in range(first, first + count):
    src = b'\\x02\\xf0' + (i & 0xffffffff).to_bytes(4, 'big')
    if kind == 'garp':
        # Gratuitous ARP: "ip is at src", sender and target IP the same (argv[7]).
        ip = socket.inet_aton(sys.argv[7])
        src = bytes.fromhex(sys.argv[8].replace(':', ''))
        frame = dst + src + b'\\x08\\x06' + b'\\x00\\x01\\x08\\x00\\x06\\x04\\x00\\x01' + src + ip + b'\\xff' * 6 + ip + bytes(18)
    else:
        frame = dst + src + tail
    while True:
        try:
            s.send(frame)
            break
        except OSError as e:
            if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                raise
            time.sleep(0.001)
    sent += 1
    if pause_every and sent % pause_every == 0:
        time.sleep(0.001)
print(json.dumps({"sent": sent, "seconds": time.time() - start}))
`;

/** Frames with count distinct new source MACs, from a container's interface. */
export async function sendRawFrames(
  topology: Topology,
  ns: string,
  options: { ifname?: string; dst: string; count: number; first?: number; pauseEvery?: number },
): Promise<{ sent: number; seconds: number }> {
  const args = [options.ifname ?? 'eth0', options.dst, String(options.count), String(options.first ?? 0), String(options.pauseEvery ?? 0), 'flood'];
  return JSON.parse(await topology.execOk(ns, ['python3', '-c', RAW_SENDER, ...args], 120_000)) as { sent: number; seconds: number };
}

/** Gratuitous ARP requests (broadcast) announcing that ip is at mac. */
export async function sendGratuitousArp(topology: Topology, ns: string, ip: string, mac: string, count = 3): Promise<void> {
  await topology.execOk(ns, ['python3', '-c', RAW_SENDER, 'eth0', 'ff:ff:ff:ff:ff:ff', String(count), '0', '1', 'garp', ip, mac], 30_000);
}
