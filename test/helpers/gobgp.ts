// gobgpd (Debian package gobgpd) inside a topology host: a config of its own
// in a temp directory, its API on the host's loopback, iBGP EVPN sessions
// with the given neighbours. Started through the topology, so it is stopped by
// its PID when the topology is destroyed; the directory is removed by stop().

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { stopProcess, type Topology } from '../../src/lab/topology';

export const GOBGP_API = '127.0.0.1:50051';
export const FABRIC_ASN = 65000;

export interface Gobgpd {
  ns: string;
  routerId: string;
  child(): ChildProcess;
  log(): string;
  /** `gobgp global rib -a evpn` as text. */
  rib(): Promise<string>;
  /** Resolves once the sessions with these neighbours (default: all) are established; throws with the state on the deadline. */
  waitEstablished(only?: string[], deadlineMs?: number): Promise<void>;
  /** Stops it (SIGTERM by PID) and starts it again with the same config. */
  restart(): Promise<void>;
  /** Kills it by PID (SIGKILL: no NOTIFICATION to the neighbours, as in a crash); start() brings it back. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The gobgpd config a tsvtep host needs: the fabric's AS, its router ID, EVPN with each neighbour. */
export function gobgpdConfig(routerId: string, neighbours: string[]): string {
  return [
    '[global.config]',
    `  as = ${FABRIC_ASN}`,
    `  router-id = "${routerId}"`,
    `  local-address-list = ["${routerId}"]`,
    ...neighbours.flatMap((address) => [
      '',
      '[[neighbors]]',
      '  [neighbors.config]',
      `    neighbor-address = "${address}"`,
      `    peer-as = ${FABRIC_ASN}`,
      '  [neighbors.timers.config]',
      '    connect-retry = 2',
      '    hold-time = 9',
      '    keepalive-interval = 3',
      '    idle-hold-time-after-reset = 1',
      '  [[neighbors.afi-safis]]',
      '    [neighbors.afi-safis.config]',
      '      afi-safi-name = "l2vpn-evpn"',
    ]),
    '',
  ].join('\n');
}

export async function startGobgpd(
  topology: Topology,
  ns: string,
  routerId: string,
  neighbours: string[],
  /** deferStart: written but not started until start(). */
  options: { deferStart?: boolean } = {},
): Promise<Gobgpd> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-gobgpd-'));
  const config = path.join(dir, 'gobgpd.toml');
  writeFileSync(config, gobgpdConfig(routerId, neighbours));
  let child!: ChildProcess;
  let log = '';
  let launched = false;
  const launch = async (): Promise<void> => {
    launched = true;
    child = topology.spawn(ns, ['gobgpd', '-f', config, '-t', 'toml', '-p', '--api-hosts', GOBGP_API, '--pprof-disable', '-l', process.env.EVPN_DEBUG ? 'debug' : 'info']);
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => (log += d));
    child.stderr?.on('data', (d: string) => (log += d));
    const end = Date.now() + 10_000;
    for (;;) {
      const answer = await topology.exec(ns, ['gobgp', 'global'], 5_000);
      if (answer.code === 0) return;
      if (child.exitCode !== null || Date.now() > end) throw new Error(`gobgpd in ${ns} did not start: ${log.slice(-2000)}`);
      await sleep(100);
    }
  };
  if (!options.deferStart) {
    try {
      await launch();
    } catch (error) {
      await stopProcess(child, 3_000);
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }
  const gobgpd: Gobgpd = {
    ns,
    routerId,
    child: () => child,
    start: launch,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
    log: () => log,
    rib: () => topology.execOk(ns, ['gobgp', 'global', 'rib', '-a', 'evpn'], 10_000),
    async waitEstablished(only = neighbours, deadlineMs = 30_000) {
      const end = Date.now() + deadlineMs;
      for (;;) {
        const table = await topology.exec(ns, ['gobgp', 'neighbor'], 5_000);
        const rows = table.stdout.split('\n').filter((line) => only.some((n) => line.trim().startsWith(`${n} `)));
        if (rows.length === only.length && rows.every((row) => /Establ/.test(row))) return;
        if (Date.now() > end) throw new Error(`gobgpd in ${ns}: sessions not established:\n${table.stdout}`);
        await sleep(250);
      }
    },
    async restart() {
      await stopProcess(child, 3_000);
      await launch();
    },
    async stop() {
      if (launched) await stopProcess(child, 3_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return gobgpd;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
