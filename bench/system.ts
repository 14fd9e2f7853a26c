// The system benchmark: tsvtep against the kernel's vxlan driver, between two
// containers on two hosts built from network namespaces.
//
//   npm run bench [-- --runs 3 --seconds 4 --underlay-mtu 1500]
//
// Each run measures every metric on kernel vxlan and then on tsvtep, metric by
// metric (kernel, tsvtep, kernel, tsvtep, ...), so that drift in the machine's
// load falls on both. Every run also moves a TCP transfer through both and
// fails if its SHA-256 differs on the two ends. Results: a table on stdout,
// JSON and an SVG chart in bench/results/.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { tcpTransfer } from '../src/lab/checks';
import { CLI_PATH } from '../src/lab/process';
import { runCommand, type Topology } from '../src/lab/topology';
import { ratioChart } from './chart';
import { cpuSeconds, memory, pingLatency, sampleEvery, tcpThroughput, udpRate, type Memory } from './measure';
import { chartBars, formatTable, summarise, type Sample } from './report';
import { kernelVariant, tsvtepVariant, VXLAN_OVERHEAD, type Variant } from './variants';
import { RESULTS_DIR, UsageError, helpRequested, numberOption, runBenchmark } from './options';

interface Options {
  runs: number;
  seconds: number;
  underlayMtu: number;
  pings: number;
  pingInterval: number;
  udpRate: string;
  transferMb: number;
  /** Extra arguments for both daemons, e.g. --no-offload. */
  tsvtepArgs: string[];
  out: string;
}

const USAGE = `usage: npm run bench -- [options]
  --runs N            runs per variant; medians are taken over them (default 3, at least 1)
  --seconds S         seconds per iperf3 measurement (default 4)
  --underlay-mtu M    MTU of the veth underlay: 1500 or e.g. 9000 (default 1500); overlay is M-50
  --pings N           pings per latency measurement (default 300)
  --ping-interval S   seconds between pings (default 0.002)
  --udp-rate R        iperf3 -b for the UDP tests (default 10G: more than either can carry)
  --transfer-mb N     size of the checked TCP transfer per run (default 16)
  --tsvtep-arg A      pass A to both daemons, e.g. --tsvtep-arg=--no-offload (repeatable)
  --out DIR           where to write JSON and SVG (default bench/results)`;

function parseOptions(argv: string[]): Options {
  const { values } = usage(() =>
    parseArgs({
      args: argv,
      options: {
        runs: { type: 'string', default: '3' },
        seconds: { type: 'string', default: '4' },
        'underlay-mtu': { type: 'string', default: '1500' },
        pings: { type: 'string', default: '300' },
        'ping-interval': { type: 'string', default: '0.002' },
        'udp-rate': { type: 'string', default: '10G' },
        'transfer-mb': { type: 'string', default: '16' },
        'tsvtep-arg': { type: 'string', multiple: true, default: [] },
        out: { type: 'string', default: RESULTS_DIR },
        help: { type: 'boolean', default: false },
      },
    }),
  );
  helpRequested(values.help, USAGE);
  return {
    runs: Math.floor(numberOption('runs', values.runs as string, 1, 100)),
    seconds: numberOption('seconds', values.seconds as string, 1, 120),
    underlayMtu: Math.floor(numberOption('underlay-mtu', values['underlay-mtu'] as string, 1280, 9216)),
    pings: Math.floor(numberOption('pings', values.pings as string, 10, 100_000)),
    pingInterval: numberOption('ping-interval', values['ping-interval'] as string, 0.001, 1),
    udpRate: values['udp-rate'] as string,
    transferMb: numberOption('transfer-mb', values['transfer-mb'] as string, 1, 4096),
    tsvtepArgs: values['tsvtep-arg'] as string[],
    out: values.out as string,
  };
}

/** Runs parse, turning what it throws into a usage error (exit 2). */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Everything made, so that any way out removes it. */
const created: Topology[] = [];
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const topology of created.splice(0)) await topology.destroy();
  })();
  return cleaning;
}

async function preflight(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the system benchmark builds network namespaces: run it as root');
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing (npm run build)`);
  for (const tool of ['ip', 'iperf3', 'ping', 'ethtool']) {
    const found = await runCommand('sh', ['-c', `command -v ${tool}`], 5_000);
    if (found.code !== 0) throw new Error(`${tool} is not installed`);
  }
}

/** The daemons' CPU time and memory while `load` runs. */
async function watchDaemons<T>(variant: Variant, load: () => Promise<T>): Promise<{ result: T; cpu: number; memory: Memory[] }> {
  if (variant.pids.length === 0) return { result: await load(), cpu: 0, memory: [] };
  const cpuBefore = variant.pids.map(cpuSeconds);
  const sampler = sampleEvery(250, () => variant.pids.map(memory));
  // If a daemon dies, say so at once rather than wait for iperf3 to give up.
  const daemonDied = variant.exited.then(() => Promise.reject(new Error(variant.failure())));
  daemonDied.catch(() => undefined); // also stopped daemons at cleanup, after this measurement
  const outcome = await Promise.race([load(), daemonDied]).then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error: error ?? new Error('measurement failed') }),
  );
  const { samples, error } = sampler.stop();
  // A daemon that died explains any failure best, so check that first.
  checkDaemonsAlive(variant);
  if (outcome.error !== undefined) throw outcome.error;
  if (error !== undefined) throw error;
  const cpu = variant.pids.map(cpuSeconds).reduce((sum, after, i) => sum + after - cpuBefore[i], 0);
  return { result: outcome.value as T, cpu, memory: samples.flat() };
}

function checkDaemonsAlive(variant: Variant): void {
  const failure = variant.failure();
  if (failure !== undefined) throw new Error(failure);
}

/** Every measurement of one run on one variant. */
type Step = (variant: Variant, sample: Sample) => Promise<void>;

/** Keeps the largest VmRSS seen under load in the run's sample. */
function noteRss(sample: Sample, memories: Memory[]): void {
  if (memories.length > 0) sample.rssMb = Math.max(sample.rssMb ?? 0, ...memories.map((m) => m.rssMb));
}

function steps(options: Options): { name: string; run: Step }[] {
  const pair = (v: Variant) => [v.topology.container(0), v.topology.container(1)] as const;
  return [
    {
      name: 'checked transfer',
      run: async (v) => {
        const [a, b] = pair(v);
        const t = await tcpTransfer(v.topology, a, b, { bytes: Math.round(options.transferMb * 1024 * 1024), timeoutMs: 120_000 });
        if (t.sentSha256 !== t.receivedSha256 || t.bytes !== t.receivedBytes) {
          throw new Error(
            `${v.name}: transfer CORRUPTED: sent ${t.bytes} bytes sha256 ${t.sentSha256}, ` +
              `received ${t.receivedBytes} bytes sha256 ${t.receivedSha256}`,
          );
        }
      },
    },
    {
      name: 'TCP, 1 stream',
      run: async (v, sample) => {
        const [a, b] = pair(v);
        const { result, cpu, memory: m } = await watchDaemons(v, () => tcpThroughput(v.topology, a, b, options.seconds, 1));
        sample.tcp1Gbps = result.gbps;
        if (v.pids.length > 0) {
          // Core-seconds per gigabit is cores per Gbit/s, whatever the start-up time of iperf3.
          sample.cpuCoresPerGbps = cpu / (result.gbps * options.seconds);
          sample.cpuCoresTcp1 = cpu / options.seconds;
        }
        noteRss(sample, m);
      },
    },
    {
      name: 'TCP, 4 streams',
      run: async (v, sample) => {
        const [a, b] = pair(v);
        const { result, memory: m } = await watchDaemons(v, () => tcpThroughput(v.topology, a, b, options.seconds, 4));
        sample.tcp4Gbps = result.gbps;
        noteRss(sample, m);
      },
    },
    ...[64, 1400].map((payload) => ({
      name: `UDP, ${payload} B`,
      run: async (v: Variant, sample: Sample) => {
        const [a, b] = pair(v);
        const { result, memory: m } = await watchDaemons(v, () => udpRate(v.topology, a, b, options.seconds, payload, options.udpRate));
        sample[`udp${payload}Kpps`] = result.receivedPps / 1000;
        sample[`udp${payload}LossPct`] = result.lostPercent;
        sample[`udp${payload}SentKpps`] = result.sentPps / 1000; // in the JSON only: what iperf3 managed to offer
        noteRss(sample, m);
      },
    })),
    {
      name: 'ping',
      run: async (v, sample) => {
        const [a, b] = pair(v);
        const p = await pingLatency(v.topology, a, b, options.pings, options.pingInterval);
        if (p.received < p.sent * 0.9) throw new Error(`${v.name}: ${p.sent - p.received} of ${p.sent} pings lost`);
        sample.pingMedianMs = p.medianMs;
        sample.pingP99Ms = p.p99Ms;
      },
    },
  ];
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  await preflight();
  const startedAt = new Date();
  const shape = { underlayMtu: options.underlayMtu, tsvtepArgs: options.tsvtepArgs };
  console.log(
    `tsvtep system benchmark: ${options.runs} run(s), ${options.seconds} s per measurement, ` +
      `underlay MTU ${shape.underlayMtu}, overlay MTU ${shape.underlayMtu - VXLAN_OVERHEAD}` +
      (options.tsvtepArgs.length > 0 ? `, tsvtep ${options.tsvtepArgs.join(' ')}` : ''),
  );
  console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} CPU(s)`);

  const kernel = await kernelVariant(shape, created);
  const tsvtep = await tsvtepVariant(shape, created);
  for (const pid of tsvtep.pids) {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes('cli.js')) throw new Error(`PID ${pid} is not the tsvtep daemon (${cmdline.replace(/\0/g, ' ')})`);
  }
  const idle = tsvtep.pids.map(memory);
  console.log(`tsvtep VmRSS right after start, idle: ${idle.map((m) => `${m.rssMb.toFixed(1)} MB`).join(', ')} (hosts 1, 2)`);
  const variants = [kernel, tsvtep];
  const samples: Record<'kernel' | 'tsvtep', Sample[]> = { kernel: [], tsvtep: [] };

  for (let run = 1; run <= options.runs; run++) {
    const current = { kernel: {} as Sample, tsvtep: {} as Sample };
    for (const step of steps(options)) {
      for (const variant of variants) {
        process.stdout.write(`run ${run}/${options.runs}  ${step.name.padEnd(16)}  ${variant.name.padEnd(6)} ... `);
        await step.run(variant, current[variant.name]);
        checkDaemonsAlive(tsvtep);
        console.log(describe(current[variant.name], step.name));
      }
    }
    current.tsvtep.hwmMb = Math.max(...tsvtep.pids.map((pid) => memory(pid).hwmMb));
    samples.kernel.push(current.kernel);
    samples.tsvtep.push(current.tsvtep);
  }

  const summary = summarise(samples.kernel, samples.tsvtep);
  const finishedAt = new Date();
  console.log('');
  console.log(formatTable(summary));
  console.log(`\nchecked transfers: ${options.runs} per variant of ${options.transferMb} MB, SHA-256 equal on both ends every time`);
  if (options.runs < 3) console.log(`note: ${options.runs} run(s) only; medians need 3 or more to mean much`);

  mkdirSync(options.out, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const jsonPath = path.join(options.out, `system-${stamp}.json`);
  const svgPath = path.join(options.out, `system-${stamp}.svg`);
  const report = {
    benchmark: 'tsvtep system benchmark against kernel vxlan',
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    options: { ...options, overlayMtu: options.underlayMtu - VXLAN_OVERHEAD },
    source: await sourceVersion(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      kernel: os.release(),
      node: process.version,
      loadAverageAtEnd: os.loadavg(),
    },
    tsvtepIdleMemory: idle,
    runs: samples,
    summary,
  };
  writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
  const extra = options.tsvtepArgs.length > 0 ? `; tsvtep ${options.tsvtepArgs.join(' ')}` : '';
  const subtitle = `medians of ${options.runs} run(s), ${options.seconds} s each; underlay MTU ${options.underlayMtu}${extra}; ${startedAt.toISOString().slice(0, 16)}Z`;
  writeFileSync(svgPath, ratioChart('tsvtep / kernel vxlan', subtitle, chartBars(summary)));
  console.log('');
  console.log(`load average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`wrote ${path.relative(process.cwd(), jsonPath)} and ${path.relative(process.cwd(), svgPath)}`);
}

/** The commit measured, and whether the working tree differed from it. */
async function sourceVersion(): Promise<{ commit: string; modifiedFiles: number }> {
  const root = path.resolve(__dirname, '..', '..');
  const head = await runCommand('git', ['-C', root, 'rev-parse', 'HEAD'], 5_000);
  const status = await runCommand('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], 5_000);
  return { commit: head.stdout.trim() || 'unknown', modifiedFiles: status.stdout.split('\n').filter((l) => l.trim()).length };
}

function describe(sample: Sample, step: string): string {
  const f = (v: number | undefined, digits: number): string => (v === undefined ? '?' : v.toFixed(digits));
  switch (step) {
    case 'checked transfer':
      return 'sha256 ok';
    case 'TCP, 1 stream':
      return `${f(sample.tcp1Gbps, 2)} Gbit/s` + (sample.cpuCoresTcp1 === undefined ? '' : `, tsvtep CPU ${f(sample.cpuCoresTcp1, 2)} cores`);
    case 'TCP, 4 streams':
      return `${f(sample.tcp4Gbps, 2)} Gbit/s`;
    case 'UDP, 64 B':
      return `${f(sample.udp64Kpps, 0)} kpps received, ${f(sample.udp64LossPct, 1)} % lost`;
    case 'UDP, 1400 B':
      return `${f(sample.udp1400Kpps, 0)} kpps received, ${f(sample.udp1400LossPct, 1)} % lost`;
    case 'ping':
      return `median ${f(sample.pingMedianMs, 3)} ms, p99 ${f(sample.pingP99Ms, 3)} ms`;
    default:
      return '';
  }
}

runBenchmark('benchmark', USAGE, main, cleanup);
