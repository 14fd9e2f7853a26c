// The soak test: tsvtep on two namespace hosts under iperf3 load for a
// bounded time, watched for leaks. Every few seconds it samples each daemon's
// resident memory and open descriptors (/proc/PID/status, /proc/PID/fd);
// after a warm-up, neither may grow beyond a bound. A checksummed TCP
// transfer in each direction at the start and at the end proves the bytes
// still arrive whole. Not part of `npm test`.
//
//   npm run soak [-- --minutes 10 --interval 5 --rss-bound-mb 32 --fd-bound 4]
//
// Prints the samples as they come and a summary; writes JSON to
// bench/results/soak-<time>.json; exits 1 if a bound is broken or a transfer
// arrives damaged, 2 on a usage error. Everything it builds is removed, also
// when it fails or is interrupted.

import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { tcpTransfer, waitForPing } from '../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../src/lab/process';
import { runCommand, stopProcess, Topology, type Container } from '../src/lab/topology';
import { memory, parseTcp, runTracked } from './measure';
import { RESULTS_DIR, helpRequested, numberOption, runBenchmark } from './options';

const VNI = 100;

interface Options {
  minutes: number;
  interval: number;
  rssBoundMb: number;
  fdBound: number;
  iperfSeconds: number;
  transferMb: number;
  out: string;
}

const USAGE = `usage: npm run soak -- [options]
  --minutes M         how long the load runs (default 10, at least 1)
  --interval S        seconds between samples of RSS and open descriptors (default 5)
  --rss-bound-mb N    how far RSS may rise above its warm-up peak, MiB (default 32)
  --fd-bound N        how many descriptors above the warm-up peak are allowed (default 4: the
                      daemon's link checks run \`ip\` through a pipe every 2 s)
  --iperf-seconds S   length of each iperf3 run; runs follow each other, alternating direction (default 30)
  --transfer-mb N     size of each checked TCP transfer at the start and the end (default 32)
  --out DIR           where to write the JSON report (default bench/results)`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string', default: '10' },
      interval: { type: 'string', default: '5' },
      'rss-bound-mb': { type: 'string', default: '32' },
      'fd-bound': { type: 'string', default: '4' },
      'iperf-seconds': { type: 'string', default: '30' },
      'transfer-mb': { type: 'string', default: '32' },
      out: { type: 'string', default: RESULTS_DIR },
      help: { type: 'boolean', default: false },
    },
  });
  helpRequested(values.help, USAGE);
  return {
    minutes: numberOption('minutes', values.minutes as string, 1, 24 * 60),
    interval: numberOption('interval', values.interval as string, 1, 600),
    rssBoundMb: numberOption('rss-bound-mb', values['rss-bound-mb'] as string, 1, 4096),
    fdBound: Math.floor(numberOption('fd-bound', values['fd-bound'] as string, 0, 1000)),
    iperfSeconds: Math.floor(numberOption('iperf-seconds', values['iperf-seconds'] as string, 5, 600)),
    transferMb: numberOption('transfer-mb', values['transfer-mb'] as string, 1, 1024),
    out: values.out as string,
  };
}

interface Sample {
  seconds: number;
  host: number;
  rssMb: number;
  fds: number;
}

interface TransferCheck {
  when: 'start' | 'end';
  from: string;
  to: string;
  mb: number;
  mbps: number;
  intact: boolean;
}

let topology: Topology | undefined;
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await topology?.destroy();
    topology = undefined;
  })();
  return cleaning;
}

async function preflight(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the soak test builds network namespaces: run it as root');
  for (const tool of ['ip', 'iperf3', 'ping']) {
    const found = await runCommand('sh', ['-c', `command -v ${tool}`], 5_000);
    if (found.code !== 0) throw new Error(`${tool} is not installed`);
  }
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function checkedTransfers(lab: Topology, when: 'start' | 'end', mb: number): Promise<TransferCheck[]> {
  const checks: TransferCheck[] = [];
  for (const [from, to] of [
    [lab.container(0), lab.container(1)],
    [lab.container(1), lab.container(0)],
  ] as [Container, Container][]) {
    const result = await tcpTransfer(lab, from, to, { bytes: mb * 1024 * 1024, timeoutMs: 120_000, port: 5002 });
    const intact = result.receivedBytes === result.bytes && result.receivedSha256 === result.sentSha256;
    checks.push({ when, from: from.ns, to: to.ip, mb, mbps: result.mbps, intact });
    console.log(`  ${when}: ${mb} MiB ${from.ip} -> ${to.ip}: ${intact ? 'sha256 equal' : 'DAMAGED'}, ${result.mbps.toFixed(0)} Mbit/s`);
  }
  return checks;
}

/** iperf3 runs back to back until deadline, alternating direction; resolves with each run's Gbit/s. */
async function load(lab: Topology, deadline: number, seconds: number): Promise<number[]> {
  const results: number[] = [];
  const servers = [lab.container(0), lab.container(1)].map((c) => lab.spawn(c.ns, ['iperf3', '-s', '-B', c.ip, '-p', '5201']));
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (let run = 0; Date.now() < deadline; run++) {
      const [from, to] = run % 2 === 0 ? [lab.container(0), lab.container(1)] : [lab.container(1), lab.container(0)];
      const t = Math.max(1, Math.min(seconds, Math.floor((deadline - Date.now()) / 1000)));
      const result = await runTracked(lab, from.ns, ['iperf3', '-c', to.ip, '-p', '5201', '-t', String(t), '-P', '2', '-J'], (t + 30) * 1000);
      try {
        results.push(parseTcp(JSON.parse(result.stdout)).gbps);
      } catch {
        throw new Error(`iperf3 from ${from.ip} to ${to.ip} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.slice(0, 300)}`);
      }
    }
  } finally {
    await Promise.all(servers.map((s) => stopProcess(s, 2_000)));
  }
  return results;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  await preflight();
  const startedAt = new Date();
  console.log(
    `tsvtep soak: ${options.minutes} min of iperf3 TCP (-P 2, ${options.iperfSeconds} s runs, alternating direction); ` +
      `RSS and descriptors every ${options.interval} s; bounds +${options.rssBoundMb} MiB RSS, +${options.fdBound} descriptors after warm-up`,
  );
  console.log(`daemon: ${CLI_PATH}`);
  console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} CPU(s)`);

  const lab = await Topology.create({ hosts: 2, vnis: [VNI], ipv6: false });
  topology = lab;
  const daemons: DaemonProcess[] = [];
  for (const host of lab.hosts) {
    const args = ['--vni', String(VNI), '--bridge', host.bridges.get(VNI) as string, '--peer', lab.hosts[1 - host.index].underlayIp];
    daemons.push(await startDaemon(lab, host.ns, args));
  }
  const [a, b] = [lab.container(0), lab.container(1)];
  if (!(await waitForPing(lab, a, b.ip)) || !(await waitForPing(lab, b, a.ip))) throw new Error('containers cannot ping each other');
  const pids = daemons.map((d) => d.child.pid as number);

  console.log('checked transfers at the start:');
  const transfers = await checkedTransfers(lab, 'start', options.transferMb);

  const samples: Sample[] = [];
  const loadStart = Date.now();
  const sample = (): void => {
    const seconds = (Date.now() - loadStart) / 1000;
    const line: string[] = [];
    pids.forEach((pid, host) => {
      const m = memory(pid);
      const fds = openFds(pid);
      samples.push({ seconds, host, rssMb: m.rssMb, fds });
      line.push(`h${host + 1} RSS ${m.rssMb.toFixed(1)} MiB, ${fds} fds`);
    });
    console.log(`  ${seconds.toFixed(0).padStart(5)} s  ${line.join('   ')}`);
  };
  console.log('load:');
  sample();
  const timer = setInterval(() => {
    try {
      sample();
    } catch (error) {
      console.log(`  sample failed: ${(error as Error).message}`);
    }
  }, options.interval * 1000);
  let throughput: number[];
  try {
    throughput = await load(lab, loadStart + options.minutes * 60_000, options.iperfSeconds);
  } finally {
    clearInterval(timer);
  }
  sample();
  for (const daemon of daemons) {
    if (daemon.child.exitCode !== null) throw new Error(`a tsvtep daemon exited during the soak:\n${daemon.log()}`);
  }

  console.log('checked transfers at the end:');
  transfers.push(...(await checkedTransfers(lab, 'end', options.transferMb)));

  // Warm-up: the first quarter of the run, at most a minute. Its peaks are the baseline.
  const warmUp = Math.min(60, (options.minutes * 60) / 4);
  const failures: string[] = [];
  const hosts = pids.map((pid, host) => {
    const mine = samples.filter((s) => s.host === host);
    const early = mine.filter((s) => s.seconds <= warmUp);
    const later = mine.filter((s) => s.seconds > warmUp);
    const baseRss = Math.max(...early.map((s) => s.rssMb));
    const baseFds = Math.max(...early.map((s) => s.fds));
    const maxRss = Math.max(...later.map((s) => s.rssMb));
    const maxFds = Math.max(...later.map((s) => s.fds));
    const first = mine[0];
    const last = mine[mine.length - 1];
    if (maxRss > baseRss + options.rssBoundMb) failures.push(`h${host + 1}: RSS rose to ${maxRss.toFixed(1)} MiB, more than ${options.rssBoundMb} MiB above its warm-up peak ${baseRss.toFixed(1)} MiB`);
    if (maxFds > baseFds + options.fdBound) failures.push(`h${host + 1}: ${maxFds} descriptors open, more than ${options.fdBound} above the warm-up peak ${baseFds}`);
    const errors = daemons[host]
      .log()
      .split('\n')
      .filter((line) => /"level":(50|60)/.test(line));
    if (errors.length > 0) failures.push(`h${host + 1}: logged errors: ${errors.slice(0, 3).join(' | ')}`);
    return {
      host: `h${host + 1}`,
      pid,
      rssMb: { first: first.rssMb, warmUpPeak: baseRss, laterPeak: maxRss, last: last.rssMb },
      fds: { first: first.fds, warmUpPeak: baseFds, laterPeak: maxFds, last: last.fds },
    };
  });
  for (const t of transfers) if (!t.intact) failures.push(`${t.when}: transfer ${t.from} -> ${t.to} arrived damaged`);

  const status = JSON.parse(await lab.execOk(lab.hosts[0].ns, [process.execPath, CLI_PATH, 'status', '--json'])) as {
    networks: { counters: { rxFrames: number; txFrames: number; drops: Record<string, number> } }[];
  };
  const counters = status.networks[0].counters;

  console.log('');
  for (const h of hosts) {
    console.log(
      `${h.host}: RSS ${h.rssMb.first.toFixed(1)} -> ${h.rssMb.last.toFixed(1)} MiB (warm-up peak ${h.rssMb.warmUpPeak.toFixed(1)}, later peak ${h.rssMb.laterPeak.toFixed(1)}); ` +
        `descriptors ${h.fds.first} -> ${h.fds.last} (warm-up peak ${h.fds.warmUpPeak}, later peak ${h.fds.laterPeak})`,
    );
  }
  const gbps = throughput.length ? throughput.reduce((s, x) => s + x, 0) / throughput.length : 0;
  console.log(`iperf3: ${throughput.length} runs, mean ${gbps.toFixed(2)} Gbit/s; h1 forwarded ${counters.txFrames} frames out, ${counters.rxFrames} in`);
  const drops = Object.entries(counters.drops).filter(([, n]) => n > 0);
  console.log(`h1 drops: ${drops.length ? drops.map(([r, n]) => `${r} ${n}`).join(', ') : 'none'}`);
  console.log(`load average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  mkdirSync(options.out, { recursive: true });
  const jsonPath = path.join(options.out, `soak-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const report = {
    benchmark: 'tsvtep soak: memory and descriptors under iperf3 load',
    command: `npm run soak -- ${process.argv.slice(2).join(' ')}`.trim(),
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    options,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, kernel: os.release(), node: process.version },
    hosts,
    throughputGbps: throughput,
    transfers,
    h1Counters: counters,
    samples,
    passed: failures.length === 0,
    failures,
  };
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), jsonPath)}`);
  await Promise.all(daemons.map((d) => d.stop()));
  if (failures.length > 0) throw new Error(failures.join('; '));
  console.log('soak passed');
}

runBenchmark('soak test', USAGE, main, cleanup);
