// Does --metrics cost forwarding throughput? Two hosts with tsvtep on both,
// iperf3 TCP from container 1 to container 2. Runs alternate between metrics
// off and metrics on; with metrics on, each host's /metrics is scraped on a
// fixed interval while iperf3 runs, as Prometheus would. The daemons are
// restarted for every run, with or without --metrics. Prints every run, the
// median of each side and the ratio on/off; writes JSON to bench/results/.
//
//   npm run bench:metrics [-- --runs 5 --seconds 5 --scrape-interval 1]

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { waitForPing } from '../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../src/lab/process';
import { runCommand, stopProcess, Topology } from '../src/lab/topology';
import { median, tcpThroughput } from './measure';
import { RESULTS_DIR, helpRequested, numberOption, runBenchmark } from './options';

const VNI = 100;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
const VXLAN_OVERHEAD = 50;
const METRICS_ADDRESS = '127.0.0.1:9477';

interface Options {
  runs: number;
  seconds: number;
  scrapeInterval: number;
  underlayMtu: number;
  out: string;
}

const USAGE = `usage: npm run bench:metrics -- [options]
  --runs N             runs with metrics off and as many with metrics on, alternating (default 5, at least 3)
  --seconds S          seconds per iperf3 run (default 5)
  --scrape-interval S  seconds between scrapes of each daemon while metrics are on (default 1)
  --underlay-mtu M     MTU of the veth underlay (default 1500); the containers get M-50
  --out DIR            where to write the JSON report (default bench/results)`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '5' },
      'scrape-interval': { type: 'string', default: '1' },
      'underlay-mtu': { type: 'string', default: '1500' },
      out: { type: 'string', default: RESULTS_DIR },
      help: { type: 'boolean', default: false },
    },
  });
  helpRequested(values.help, USAGE);
  return {
    runs: Math.floor(numberOption('runs', values.runs as string, 3, 100)),
    seconds: numberOption('seconds', values.seconds as string, 1, 120),
    scrapeInterval: numberOption('scrape-interval', values['scrape-interval'] as string, 0.1, 60),
    underlayMtu: Math.floor(numberOption('underlay-mtu', values['underlay-mtu'] as string, 1280, 9216)),
    out: values.out as string,
  };
}

/** Scrapes a URL every intervalMs; on SIGTERM prints {ok, failed, bytes} and exits. */
const SCRAPER = `
const [url, intervalMs] = process.argv.slice(1);
const counts = { ok: 0, failed: 0, bytes: 0 };
let busy = false;
const timer = setInterval(async () => {
  if (busy) return;
  busy = true;
  try {
    const r = await fetch(url);
    const body = await r.text();
    if (r.status === 200 && body.includes('tsvtep_overlay_sent_frames_total')) { counts.ok++; counts.bytes += body.length; }
    else counts.failed++;
  } catch { counts.failed++; }
  busy = false;
}, Number(intervalMs));
process.on('SIGTERM', () => { clearInterval(timer); process.stdout.write(JSON.stringify(counts) + '\\n', () => process.exit(0)); });
`;

interface Run {
  metrics: boolean;
  gbps: number;
  retransmits: number;
  scrapes?: { ok: number; failed: number };
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
  if (process.getuid?.() !== 0) throw new Error('the benchmark builds network namespaces: run it as root');
  for (const tool of ['ip', 'iperf3', 'ping', 'ethtool']) {
    const found = await runCommand('sh', ['-c', `command -v ${tool}`], 5_000);
    if (found.code !== 0) throw new Error(`${tool} is not installed`);
  }
}

async function buildLab(underlayMtu: number): Promise<Topology> {
  const lab = await Topology.create({ hosts: 2, vnis: [VNI], underlayMtu, containerMtu: underlayMtu - VXLAN_OVERHEAD, ipv6: false });
  topology = lab;
  // The underlay keeps the offloads the kernel creates, as in the system benchmark.
  return lab;
}

async function oneRun(lab: Topology, metrics: boolean, options: Options): Promise<Run> {
  const daemons: DaemonProcess[] = [];
  const scrapers: ReturnType<Topology['spawn']>[] = [];
  try {
    for (const host of lab.hosts) {
      const args = ['--vni', String(VNI), '--bridge', host.bridges.get(VNI) as string, '--peer', lab.hosts[1 - host.index].underlayIp];
      if (metrics) args.push('--metrics', METRICS_ADDRESS);
      daemons.push(await startDaemon(lab, host.ns, args));
    }
    const [a, b] = [lab.container(0), lab.container(1)];
    if (!(await waitForPing(lab, a, b.ip)) || !(await waitForPing(lab, b, a.ip))) throw new Error('containers cannot ping each other');
    if (metrics) {
      for (const host of lab.hosts) {
        const child = lab.spawn(host.ns, [process.execPath, '-e', SCRAPER, `http://${METRICS_ADDRESS}/metrics`, String(options.scrapeInterval * 1000)]);
        child.stderr?.resume();
        scrapers.push(child);
      }
    }
    const result = await tcpThroughput(lab, a, b, options.seconds);
    for (const daemon of daemons) {
      if (daemon.child.exitCode !== null) throw new Error(`a tsvtep daemon exited during the run:\n${daemon.log()}`);
    }
    const run: Run = { metrics, gbps: result.gbps, retransmits: result.retransmits };
    if (metrics) {
      const counts = await Promise.all(scrapers.map((child) => finishScraper(child)));
      run.scrapes = { ok: counts.reduce((s, c) => s + c.ok, 0), failed: counts.reduce((s, c) => s + c.failed, 0) };
      if (run.scrapes.ok === 0) throw new Error('metrics on, but no scrape succeeded; the run measured nothing');
    }
    return run;
  } finally {
    await Promise.all(scrapers.map((child) => stopProcess(child, 2_000)));
    await Promise.all(daemons.map((daemon) => daemon.stop()));
  }
}

function finishScraper(child: ReturnType<Topology['spawn']>): Promise<{ ok: number; failed: number }> {
  let out = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => (out += chunk));
  return stopProcess(child, 2_000).then(() => {
    try {
      return JSON.parse(out.trim()) as { ok: number; failed: number };
    } catch {
      return { ok: 0, failed: 0 };
    }
  });
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  await preflight();
  const startedAt = new Date();
  console.log(
    `tsvtep metrics overhead: ${options.runs} run(s) each with metrics off and on, alternating; iperf3 TCP ${options.seconds} s; ` +
      `scrape every ${options.scrapeInterval} s; underlay MTU ${options.underlayMtu}`,
  );
  console.log(`daemon: ${CLI_PATH}`);
  console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} CPU(s)`);
  const lab = await buildLab(options.underlayMtu);
  const runs: Run[] = [];
  for (let i = 0; i < options.runs * 2; i++) {
    // off, on, on, off, off, on, ...: neither variant always runs second.
    const metrics = i % 4 === 1 || i % 4 === 2;
    process.stdout.write(`run ${Math.floor(i / 2) + 1}/${options.runs}  metrics ${metrics ? 'on ' : 'off'} ... `);
    const run = await oneRun(lab, metrics, options);
    runs.push(run);
    console.log(
      `${run.gbps.toFixed(3)} Gbit/s, ${run.retransmits} retransmits` + (run.scrapes ? `, ${run.scrapes.ok} scrapes (${run.scrapes.failed} failed)` : ''),
    );
  }
  const off = runs.filter((r) => !r.metrics).map((r) => r.gbps);
  const on = runs.filter((r) => r.metrics).map((r) => r.gbps);
  const summary = { offMedianGbps: median(off), onMedianGbps: median(on), ratio: median(on) / median(off) };
  const spread = (values: number[]): string => `min ${Math.min(...values).toFixed(3)}, max ${Math.max(...values).toFixed(3)}`;
  console.log('');
  console.log(`metrics off: median ${summary.offMedianGbps.toFixed(3)} Gbit/s  (${spread(off)})`);
  console.log(`metrics on:  median ${summary.onMedianGbps.toFixed(3)} Gbit/s  (${spread(on)})`);
  console.log(`ratio on/off: ${summary.ratio.toFixed(3)}`);
  console.log(`load average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  mkdirSync(options.out, { recursive: true });
  const jsonPath = path.join(options.out, `metrics-overhead-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const report = {
    benchmark: 'tsvtep forwarding throughput with --metrics off and on',
    command: `npm run bench:metrics -- ${process.argv.slice(2).join(' ')}`.trim(),
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    options,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, kernel: os.release(), node: process.version },
    runs,
    summary,
  };
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), jsonPath)}`);
}

runBenchmark('benchmark', USAGE, main, cleanup);
