// Shared setup for the integration tests: a topology per describe block that
// is always destroyed, tsvtep on the hosts, and the checks as assertions.

import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ping, tcpTransfer, waitForPing } from '../../src/lab/checks';
import { startDaemon, type DaemonProcess } from '../../src/lab/process';
import { Topology, type Container, type TopologyOptions } from '../../src/lab/topology';

/**
 * Builds a topology before the tests of the enclosing describe block and
 * destroys it after them, also when building, starting or a test fails.
 * Returns a getter, since the topology exists only once beforeAll ran.
 */
export function useTopology(options: TopologyOptions, start?: (topology: Topology) => Promise<unknown>): () => Topology {
  let topology: Topology | undefined;
  beforeAll(async () => {
    topology = await Topology.create(options);
    await start?.(topology);
  });
  afterAll(async () => {
    await topology?.destroy();
  });
  return () => {
    if (!topology) throw new Error('the topology was not built (see the beforeAll error)');
    return topology;
  };
}

/** The other hosts' underlay addresses, as --peer arguments. */
export function peerArgs(topology: Topology, host: number, family: 4 | 6 = 4): string[] {
  return topology.hosts
    .filter((h) => h.index !== host)
    .flatMap((h) => ['--peer', family === 4 ? h.underlayIp : h.underlayIp6]);
}

/** tsvtep on the given hosts (default: all), each with every other host as a peer. */
export async function startVteps(
  topology: Topology,
  options: { family?: 4 | 6; hosts?: number[]; vni?: number } = {},
): Promise<DaemonProcess[]> {
  const vni = options.vni ?? topology.options.vnis[0];
  const hosts = options.hosts ?? topology.hosts.map((h) => h.index);
  const daemons: DaemonProcess[] = [];
  for (const index of hosts) {
    const host = topology.hosts[index];
    const args = ['--vni', String(vni), '--bridge', host.bridges.get(vni) as string, ...peerArgs(topology, index, options.family)];
    daemons.push(await startDaemon(topology, host.ns, args));
  }
  return daemons;
}

/**
 * Polls ss in ns until a TCP socket with local port `port` is in `state`
 * (a server listening, a transfer under way); false if none is by timeoutMs.
 */
export async function waitForTcp(topology: Topology, ns: string, port: number, state: 'listening' | 'established', timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const sockets = await topology.exec(ns, ['ss', '-Htn', 'state', state, `( sport = :${port} )`], 5_000);
    if (sockets.code === 0 && sockets.stdout.trim() !== '') return true;
    if (Date.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Waits for the first answer (ARP or neighbour discovery and learning happen
 * then), after which every one of a few more pings must be answered.
 */
export async function expectPing(topology: Topology, from: Container, to: Container, family: 4 | 6 = 4): Promise<void> {
  const address = family === 4 ? to.ip : to.ip6;
  expect(await waitForPing(topology, from, address, 15_000), `no answer from ${address} in ${from.ns}`).toBe(true);
  const result = await ping(topology, from, address, { count: 5 });
  expect(result.received, result.output).toBe(result.sent);
  expect(result.sent).toBe(5);
}

/** A TCP transfer (20 MiB unless told) whose bytes arrive complete and unchanged. */
export async function expectTransfer(
  topology: Topology,
  from: Container,
  to: Container,
  family: 4 | 6 = 4,
  bytes = 20 * 1024 * 1024,
): Promise<void> {
  const result = await tcpTransfer(topology, from, to, { bytes, ipv6: family === 6, timeoutMs: 90_000 });
  expect(result.bytes).toBe(bytes);
  expect(result.receivedBytes).toBe(bytes);
  expect(result.receivedSha256).toBe(result.sentSha256);
}

/**
 * The tests every two-host lab runs, container 1 (host 1) to container 2
 * (host 2) and back, for IPv4 and IPv6 inside the tunnel: ping, and a 20 MiB
 * TCP transfer whose sha256 matches on both ends.
 */
export function itCarriesTrafficBothWays(lab: () => Topology): void {
  for (const family of [4, 6] as const) {
    const c1 = (): Container => lab().container(0);
    const c2 = (): Container => lab().container(1);
    it(`IPv${family} inside: ping container 1 -> 2 and 2 -> 1`, async () => {
      await expectPing(lab(), c1(), c2(), family);
      await expectPing(lab(), c2(), c1(), family);
    });
    it(`IPv${family} inside: 20 MiB over TCP 1 -> 2 and 2 -> 1 arrive intact`, async () => {
      await expectTransfer(lab(), c1(), c2(), family);
      await expectTransfer(lab(), c2(), c1(), family);
    });
  }
}

export interface Capture {
  /** Lines tcpdump printed so far (one per packet with -l). */
  lines(): string[];
  /** Resolves once some line matches, false if none did by the deadline. */
  waitFor(pattern: RegExp, deadlineMs?: number): Promise<boolean>;
  /** Stops tcpdump (SIGINT to its PID) and returns every line. */
  stop(): Promise<string[]>;
}

/**
 * Starts `tcpdump -l -n -t ARGS` in a namespace, bounded by `timeout`, and
 * waits until it listens. Its lines are the packets, decoded, without
 * timestamps (tcpdump decodes VXLAN on port 4789 down to the inner frame).
 */
export async function startCapture(topology: Topology, ns: string, args: string[], limitS = 60): Promise<Capture> {
  const child = topology.spawn(ns, ['timeout', '-s', 'INT', String(limitS), 'tcpdump', '-l', '-n', '-t', ...args]);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => (out += d));
  child.stderr?.on('data', (d: string) => (err += d));
  await until(child, () => /listening on/.test(err), 10_000, () => `tcpdump in ${ns} did not start: ${err}`);
  const lines = (): string[] => out.split('\n').filter((line) => line !== '');
  return {
    lines,
    waitFor: async (pattern, deadlineMs = 10_000) => {
      try {
        await until(child, () => lines().some((line) => pattern.test(line)), deadlineMs, () => '');
        return true;
      } catch {
        return false;
      }
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGINT');
        await exited;
      }
      return lines();
    },
  };
}

/** Polls condition until it holds; rejects on the deadline or if child exits first. */
async function until(child: ChildProcess, condition: () => boolean, deadlineMs: number, why: () => string): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!condition()) {
    if (child.exitCode !== null || Date.now() > end) throw new Error(why());
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
