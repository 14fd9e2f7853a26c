// How the etcd control plane scales: N simulated hosts (one lease each, a
// member key per VNI and MACs) written into a real etcd, then one real tsvtep
// started against it with --etcd-fdb. Reports how long the daemon takes to
// converge (every VNI at N members), how long a new member takes to reach it
// (median of several), its resident memory, and etcd's write rate while the
// fleet registers. Times come from the daemon's own log lines (pino's ms
// timestamps) and the writer's clock: one machine, one clock.
//
//   npm run bench:etcd [-- --hosts 1000 --vnis 10 --macs 10 --changes 5]

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { addressTheSwitch, startEtcd, type EtcdInstance } from '../src/lab/etcd';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../src/lab/process';
import { Topology } from '../src/lab/topology';
import { median } from './measure';
import { RESULTS_DIR, helpRequested, numberOption, runBenchmark } from './options';
import { simulatedAddress } from './etcd-writer';

const WRITER = path.resolve(__dirname, 'etcd-writer.js');

interface Options {
  hosts: number;
  vnis: number;
  macs: number;
  changes: number;
  ttl: number;
  out: string;
}

const USAGE = `usage: npm run bench:etcd -- [options]
  --hosts N    simulated hosts registered in etcd (default 1000)
  --vnis V     VNIs each host serves, and the daemon too (default 10)
  --macs M     MACs each host publishes per VNI (default 10)
  --changes C  new members added one at a time to time propagation (default 5)
  --ttl S      the daemon's lease TTL (default 10)
  --out DIR    where to write the JSON report (default bench/results)`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      hosts: { type: 'string', default: '1000' },
      vnis: { type: 'string', default: '10' },
      macs: { type: 'string', default: '10' },
      changes: { type: 'string', default: '5' },
      ttl: { type: 'string', default: '10' },
      out: { type: 'string', default: RESULTS_DIR },
      help: { type: 'boolean', default: false },
    },
  });
  helpRequested(values.help, USAGE);
  return {
    hosts: numberOption('hosts', values.hosts, 1, 60_000),
    vnis: numberOption('vnis', values.vnis, 1, 32),
    macs: numberOption('macs', values.macs, 0, 100),
    changes: numberOption('changes', values.changes, 1, 100),
    ttl: numberOption('ttl', values.ttl, 2, 3600),
    out: values.out,
  };
}

interface LogLine {
  time: number;
  msg: string;
  vni?: number;
  members?: number;
  added?: string[];
}

function logLines(daemon: DaemonProcess): LogLine[] {
  return daemon
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Math.round(Number(match[1]) / 1024) : NaN;
}

async function until(check: () => boolean, deadlineMs: number): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}

let topology: Topology | undefined;
let etcd: EtcdInstance | undefined;
let daemon: DaemonProcess | undefined;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const vnis = Array.from({ length: options.vnis }, (_, i) => 1000 + i);
  topology = await Topology.create({ hosts: 2, ipv6: false, vnis });
  etcd = await startEtcd(topology, topology.coreNs, await addressTheSwitch(topology));
  const e = etcd;
  const t = topology;

  console.log(`registering ${options.hosts} simulated hosts x ${options.vnis} VNIs x ${options.macs} MACs in etcd ...`);
  const populate = JSON.parse(await t.execOk(t.coreNs, [process.execPath, WRITER, 'populate', e.url, String(options.hosts), String(options.vnis), String(options.macs)], 600_000)) as {
    keys: number;
    seconds: number;
    keysPerSecond: number;
  };
  console.log(`  ${populate.keys} keys under ${options.hosts} leases in ${populate.seconds.toFixed(1)} s: ${populate.keysPerSecond} keys/s`);

  const host = t.hosts[0];
  const config = path.join(e.dir, 'tsvtep.yaml');
  writeFileSync(
    config,
    `etcd: {endpoints: ["${e.url}"], ttlSeconds: ${options.ttl}, fdb: true}\nnetworks:\n${vnis.map((vni) => `  - {vni: ${vni}, bridge: ${host.bridges.get(vni)}}\n`).join('')}`,
  );
  const spawnedAt = Date.now();
  daemon = await startDaemon(t, host.ns, ['--config', config], 60_000);
  const d = daemon;
  const converged = (): number | undefined => {
    let last = 0;
    for (const vni of vnis) {
      const line = logLines(d).find((l) => l.vni === vni && l.members === options.hosts);
      if (!line) return undefined;
      last = Math.max(last, line.time);
    }
    return last;
  };
  if (!(await until(() => converged() !== undefined, 300_000))) throw new Error(`the daemon did not converge: ${d.log().slice(-2000)}`);
  const convergedMs = (converged() as number) - spawnedAt;
  const firstLine = logLines(d)[0]?.time ?? spawnedAt;
  const fdbEntries = await installedMacs(t, host.ns, vnis[0]);
  console.log(`  daemon converged ${convergedMs} ms after it was started (${(converged() as number) - firstLine} ms after its first log line); VNI ${vnis[0]} has ${fdbEntries} remote MACs`);
  const registered = logLines(d).find((l) => l.msg.includes('registered as')) as (LogLine & { registerMs?: number; snapshotMs?: number; snapshotKeys?: number }) | undefined;
  const firstApplied = Math.min(...logLines(d).filter((l) => l.members !== undefined).map((l) => l.time));
  console.log(`  registered in ${registered?.registerMs} ms, read ${registered?.snapshotKeys} keys and applied them in ${registered?.snapshotMs} ms; first VNI applied ${firstApplied - firstLine} ms after the first log line`);
  const rss = rssMb(d.child.pid as number);
  console.log(`  resident memory: ${rss} MB`);

  const propagation: number[] = [];
  for (let i = 0; i < options.changes; i++) {
    const address = simulatedAddress(options.hosts + i);
    const vni = vnis[i % vnis.length];
    const { putAt } = JSON.parse(await t.execOk(t.coreNs, [process.execPath, WRITER, 'add', e.url, String(vni), address], 30_000)) as { putAt: number };
    const seen = (): LogLine | undefined => logLines(d).find((l) => l.vni === vni && l.added?.includes(address));
    if (!(await until(() => seen() !== undefined, 10_000))) throw new Error(`member ${address} did not reach the daemon`);
    propagation.push((seen() as LogLine).time - putAt);
  }
  console.log(`  a new member reached the daemon in ${median(propagation)} ms (median of ${propagation.length}: ${propagation.join(', ')})`);

  const report = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, load: os.loadavg() },
    options,
    etcd: { keys: populate.keys, leases: options.hosts, registerSeconds: populate.seconds, keysPerSecond: populate.keysPerSecond, keepalivesPerSecond: Math.round((options.hosts * 3) / options.ttl) },
    daemon: { registerMs: registered?.registerMs, snapshotMs: registered?.snapshotMs, convergedMs, rssMb: rss, remoteMacsOnFirstVni: fdbEntries, propagationMs: propagation, propagationMedianMs: median(propagation) },
  };
  mkdirSync(options.out, { recursive: true });
  const file = path.join(options.out, `etcd-${report.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`report: ${file}`);
}

async function installedMacs(t: Topology, ns: string, vni: number): Promise<number> {
  const out = await t.execOk(ns, [process.execPath, CLI_PATH, 'fdb', 'show', '--json', '--vni', String(vni)], 30_000);
  return (JSON.parse(out) as { entries: { source?: string }[] }).entries.filter((e) => e.source === 'etcd').length;
}

runBenchmark('etcd benchmark', USAGE, main, async () => {
  await daemon?.stop();
  await etcd?.destroy();
  await topology?.destroy();
});
