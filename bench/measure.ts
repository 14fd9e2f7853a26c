// The measuring instruments of the system benchmark: iperf3 and ping between
// two containers, parsed from their own output, and a process's CPU time and
// memory from /proc. Nothing here decides what to compare.

import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { stopProcess, type Container, type RunResult, type Topology } from '../src/lab/topology';

export interface TcpResult {
  /** Received by the server, Gbit/s. */
  gbps: number;
  retransmits: number;
}

export interface UdpResult {
  /** Datagrams the server received per second. */
  receivedPps: number;
  /** Datagrams the client sent per second. */
  sentPps: number;
  lostPercent: number;
  /**
   * Of those lost, the share the receiving container's own socket dropped (its buffer full:
   * /proc/net/snmp RcvbufErrors), which the tunnel had delivered. Only from udpOffered.
   */
  receiverDropPercent?: number;
}

export interface PingStats {
  sent: number;
  received: number;
  medianMs: number;
  p99Ms: number;
}

export interface IperfOptions {
  seconds: number;
  port?: number;
  /** Parallel TCP streams (-P). */
  streams?: number;
  /** UDP instead of TCP, with this payload size (-l) and target rate (-b, e.g. '0' for unlimited). */
  udp?: { payload: number; rate: string };
}

/** Runs one iperf3 test from `from` to `to` and returns the parsed JSON report. */
export async function iperf3(topology: Topology, from: Container, to: Container, options: IperfOptions): Promise<unknown> {
  const port = String(options.port ?? 5201);
  // -1: the server serves one test and exits, so a failed test leaves nothing stuck.
  const server = topology.spawn(to.ns, ['iperf3', '-s', '-1', '-B', to.ip, '-p', port, '--forceflush']);
  try {
    await waitForOutput(server, /Server listening/, 10_000, `iperf3 server in ${to.ns}`);
    const args = ['iperf3', '-c', to.ip, '-p', port, '-t', String(options.seconds), '-J'];
    if (options.streams !== undefined && options.streams > 1) args.push('-P', String(options.streams));
    if (options.udp) args.push('-u', '-b', options.udp.rate, '-l', String(options.udp.payload));
    const result = await runTracked(topology, from.ns, args, (options.seconds + 20) * 1000);
    let report: { error?: string };
    try {
      report = JSON.parse(result.stdout) as { error?: string };
    } catch {
      throw new Error(`iperf3 ${args.slice(1).join(' ')} printed no report (exit ${result.code}): ${result.stderr.trim()}`);
    }
    if (report.error) throw new Error(`iperf3 ${args.slice(1).join(' ')}: ${report.error}`);
    return report;
  } finally {
    await stopProcess(server, 2_000);
  }
}

export async function tcpThroughput(topology: Topology, from: Container, to: Container, seconds: number, streams = 1): Promise<TcpResult> {
  return parseTcp(await iperf3(topology, from, to, { seconds, streams }));
}

export async function udpRate(
  topology: Topology,
  from: Container,
  to: Container,
  seconds: number,
  payload: number,
  rate: string,
): Promise<UdpResult> {
  return parseUdp(await iperf3(topology, from, to, { seconds, udp: { payload, rate } }));
}

/**
 * `senders` iperf3 clients at once, each to its own server and each offering
 * its share of `totalPps` datagrams per second of `payload` bytes. One iperf3
 * process is single-threaded and tops out below what kernel vxlan carries, so
 * one sender would measure the sender. Returns the sums.
 */
export async function udpOffered(
  topology: Topology,
  from: Container,
  to: Container,
  options: { seconds: number; payload: number; totalPps: number; senders: number },
): Promise<UdpResult> {
  const perSenderBps = Math.round((options.totalPps / options.senders) * options.payload * 8);
  const receiverDropsBefore = await udpReceiveBufferErrors(topology, to.ns);
  const results = await Promise.all(
    Array.from({ length: options.senders }, (_, i) =>
      iperf3(topology, from, to, { seconds: options.seconds, port: 5301 + i, udp: { payload: options.payload, rate: String(perSenderBps) } }).then(parseUdp),
    ),
  );
  const receiverDrops = (await udpReceiveBufferErrors(topology, to.ns)) - receiverDropsBefore;
  const sent = results.reduce((sum, r) => sum + r.sentPps, 0);
  const received = results.reduce((sum, r) => sum + r.receivedPps, 0);
  const sentDatagrams = sent * options.seconds;
  return {
    sentPps: sent,
    receivedPps: received,
    lostPercent: sent > 0 ? Math.max(0, (100 * (sent - received)) / sent) : 0,
    receiverDropPercent: sentDatagrams > 0 ? (100 * receiverDrops) / sentDatagrams : 0,
  };
}

/** UDP datagrams a namespace's sockets dropped because their receive buffer was full. */
async function udpReceiveBufferErrors(topology: Topology, ns: string): Promise<number> {
  const lines = (await topology.execOk(ns, ['cat', '/proc/net/snmp'])).split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.trim().split(/\s+/) ?? [];
  const values = lines[1]?.trim().split(/\s+/) ?? [];
  const value = Number(values[names.indexOf('RcvbufErrors')]);
  if (!Number.isFinite(value)) throw new Error(`no RcvbufErrors in ${ns}'s /proc/net/snmp`);
  return value;
}

export interface LossFreeRate {
  /** The highest rate the senders achieved with at most maxLossPct lost in the tunnel, datagrams per second (0 if none). */
  pps: number;
  /** True if the sweep ended because the senders could not offer more, not because of loss. */
  senderBound: boolean;
  /** The most the receiving iperf3's own socket dropped at a rate that counted as loss-free, %. */
  receiverDropPercent: number;
  /** Every step: offered, achieved by the senders, lost in all, dropped by the receiver's socket. */
  steps: { offeredPps: number; sentPps: number; lostPercent: number; receiverDropPercent: number }[];
}

/**
 * The loss-free rate from a short sweep: offered rates grow by `factor` from
 * `startPps` until more than maxLossPct is lost, then `refine` bisection steps
 * between the last good and the first bad rate; a rate that loses too much is
 * tried once more before it counts as bad. If the senders fall short of
 * an offered rate by more than 10 % with no loss, the sweep stops there and
 * says it is sender-bound. Loss is what the tunnel lost: datagrams the
 * receiving application's full socket buffer dropped had been delivered, so
 * they are left out of it and reported beside it (the receiver is one
 * single-threaded iperf3, and it is the first to give up on kernel vxlan).
 */
export async function lossFreeRate(
  offer: (pps: number) => Promise<UdpResult>,
  options: { startPps: number; factor: number; maxSteps: number; refine: number; maxLossPct: number },
): Promise<LossFreeRate> {
  const steps: LossFreeRate['steps'] = [];
  const tunnelLoss = (r: UdpResult): number => Math.max(0, r.lostPercent - (r.receiverDropPercent ?? 0));
  const once = async (pps: number): Promise<UdpResult> => {
    const r = await offer(pps);
    steps.push({ offeredPps: pps, sentPps: r.sentPps, lostPercent: r.lostPercent, receiverDropPercent: r.receiverDropPercent ?? 0 });
    return r;
  };
  // A rate fails only if it loses too much twice: one burst of load from
  // elsewhere on the machine should not end the sweep (RFC 2544 repeats trials too).
  const tryRate = async (pps: number): Promise<UdpResult> => {
    const first = await once(pps);
    return tunnelLoss(first) > options.maxLossPct ? once(pps) : first;
  };
  let good = 0;
  let goodOffered = 0;
  let bad = 0;
  let receiverDrops = 0;
  const pass = (r: UdpResult): void => {
    good = Math.max(good, r.sentPps);
    receiverDrops = Math.max(receiverDrops, r.receiverDropPercent ?? 0);
  };
  let offered = options.startPps;
  for (let i = 0; i < options.maxSteps; i++) {
    const r = await tryRate(offered);
    if (tunnelLoss(r) > options.maxLossPct) {
      bad = offered;
      break;
    }
    pass(r);
    goodOffered = offered;
    if (r.sentPps < 0.9 * offered) return { pps: good, senderBound: true, receiverDropPercent: receiverDrops, steps };
    offered = Math.round(offered * options.factor);
  }
  if (bad !== 0) {
    let low = goodOffered;
    let high = bad;
    for (let i = 0; i < options.refine && high - low > 0.05 * high; i++) {
      const mid = Math.round((low + high) / 2);
      const r = await tryRate(mid);
      if (tunnelLoss(r) > options.maxLossPct) high = mid;
      else {
        low = mid;
        pass(r);
      }
    }
  }
  return { pps: good, senderBound: false, receiverDropPercent: receiverDrops, steps };
}

interface IperfTcpReport {
  end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } };
}

export function parseTcp(report: unknown): TcpResult {
  const end = (report as IperfTcpReport).end;
  return { gbps: end.sum_received.bits_per_second / 1e9, retransmits: end.sum_sent.retransmits ?? 0 };
}

interface IperfUdpSum {
  seconds: number;
  packets: number;
  lost_packets: number;
}

/**
 * iperf3 (3.12) reports the UDP receiver's view in end.sum_received when
 * present, else in end.sum: packets is what the client sent, lost_packets
 * what the server never saw.
 */
export function parseUdp(report: unknown): UdpResult {
  const end = (report as { end: { sum?: IperfUdpSum; sum_received?: IperfUdpSum; sum_sent?: IperfUdpSum } }).end;
  const sum = end.sum_received ?? end.sum;
  if (!sum) throw new Error('iperf3 UDP report has no summary');
  const sent = end.sum_sent ?? sum;
  const received = Math.max(0, sum.packets - sum.lost_packets);
  return {
    receivedPps: received / sum.seconds,
    sentPps: sent.packets / sent.seconds,
    lostPercent: sum.packets > 0 ? (100 * sum.lost_packets) / sum.packets : 0,
  };
}

/** `count` pings at `intervalS` (root may go below 0.2 s); median and 99th percentile RTT. */
export async function pingLatency(topology: Topology, from: Container, to: Container, count: number, intervalS: number): Promise<PingStats> {
  const args = ['ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1', to.ip];
  const result = await runTracked(topology, from.ns, args, (count * intervalS + 10) * 1000);
  return parsePing(result.stdout + result.stderr);
}

export function parsePing(output: string): PingStats {
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(output);
  const rtts = [...output.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return {
    sent: summary ? Number(summary[1]) : 0,
    received: summary ? Number(summary[2]) : 0,
    medianMs: percentile(rtts, 50),
    p99Ms: percentile(rtts, 99),
  };
}

// ---- /proc

function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`process ${pid} has exited`);
    throw error;
  }
}

let clockTicks: number | undefined;

/** Clock ticks per second of utime/stime in /proc/PID/stat. */
export function ticksPerSecond(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clockTicks;
}

/**
 * CPU time the whole machine spent busy (user, nice, system, irq, softirq,
 * steal; guest time is inside user), in core-seconds, from /proc/stat. Kernel
 * vxlan does its work in softirq, so only this compares it with a daemon.
 */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + (steal || 0)) / ticksPerSecond();
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readProc(pid, 'stat');
  // The command name may hold spaces and parentheses; fields resume after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

export interface Memory {
  /** Resident set size now, MB (2^20 bytes). */
  rssMb: number;
  /** Peak resident set size since start, MB. */
  hwmMb: number;
}

export function memory(pid: number): Memory {
  const status = readProc(pid, 'status');
  const kb = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(match[1]);
  };
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/**
 * Calls sample() every intervalMs until stop(), which returns the samples and
 * the first error a sample threw (a process that went away, say).
 */
export function sampleEvery<T>(intervalMs: number, sample: () => T): { stop(): { samples: T[]; error?: unknown } } {
  const samples: T[] = [];
  let error: unknown;
  const take = (): void => {
    if (error !== undefined) return;
    try {
      samples.push(sample());
    } catch (e) {
      error = e;
    }
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { samples, error };
    },
  };
}

// ---- statistics

export function median(values: number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile; NaN for no values. */
export function percentile(values: number[], p: number): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((x, y) => x - y);
  if (finite.length === 0) return NaN;
  if (p === 50 && finite.length % 2 === 0) return (finite[finite.length / 2 - 1] + finite[finite.length / 2]) / 2;
  const rank = Math.ceil((p / 100) * finite.length);
  return finite[Math.min(finite.length, Math.max(1, rank)) - 1];
}

// ---- helpers

/**
 * Like topology.exec, but the process is one topology.spawn tracks, so
 * destroy() stops it by PID if the benchmark is interrupted meanwhile.
 */
export function runTracked(topology: Topology, ns: string, command: string[], timeoutMs: number): Promise<RunResult> {
  const child = topology.spawn(ns, command);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => (stdout += d));
  child.stderr?.on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void stopProcess(child, 2_000);
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: `${stderr}${error.message}`, code: 1 });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\n(timed out after ${timeoutMs} ms)`;
      resolve({ stdout, stderr, code: code ?? 1 });
    });
  });
}

function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => finish(new Error(`${what} did not start within ${timeoutMs} ms: ${seen.trim()}`)), timeoutMs);
    const onData = (chunk: Buffer | string): void => {
      seen += chunk.toString();
      if (pattern.test(seen)) finish();
    };
    const onExit = (code: number | null): void => finish(new Error(`${what} exited ${code}: ${seen.trim()}`));
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      // Keep draining, so a chatty child never blocks on a full pipe.
      child.stdout?.resume();
      child.stderr?.resume();
      if (error) reject(error);
      else resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}
