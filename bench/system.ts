// The system benchmark: tsvtep against the kernel's vxlan driver, with a plain
// veth between the bridges as the ceiling, between two containers on two hosts
// built from network namespaces (bench/variants.ts has the three labs).
//
//   npm run bench [-- --runs 3 --seconds 4 --underlay-mtu 1500]
//
// Each run measures every metric on every lab, metric by metric, in an order
// that alternates from run to run, so that drift in the machine's load falls
// on all. Every run also moves a TCP transfer through each lab and fails if
// its SHA-256 differs on the two ends. Results: a table on stdout, JSON and an
// SVG chart in bench/results/.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { tcpTransfer } from '../src/lab/checks';
import { CLI_PATH } from '../src/lab/process';
import { runCommand, type Topology } from '../src/lab/topology';
import { ratioChart } from './chart';
import {
  cpuSeconds,
  lossFreeRate,
  machineBusySeconds,
  memory,
  pingLatency,
  sampleEvery,
  tcpThroughput,
  udpOffered,
  type LossFreeRate,
  type Memory,
} from './measure';
import { chartBars, formatTable, summarise, type Sample } from './report';
import { VARIANT_DIFFERENCES, VARIANT_NAMES, VARIANTS, VXLAN_OVERHEAD, type Variant, type VariantName } from './variants';
import { RESULTS_DIR, UsageError, helpRequested, numberOption, runBenchmark } from './options';

interface Options {
  runs: number;
  seconds: number;
  underlayMtu: number;
  idlePings: number;
  busyPings: number;
  udpSenders: number;
  udpStepSeconds: number;
  transferMb: number;
  /** Extra arguments for both daemons, e.g. --no-offload. */
  tsvtepArgs: string[];
  out: string;
}

const USAGE = `usage: npm run bench -- [options]
  --runs N              runs per lab; medians are taken over them (default 3, at least 1)
  --seconds S           seconds per iperf3 TCP measurement (default 4)
  --underlay-mtu M      MTU of the veth underlay: 1500 or e.g. 9000 (default 1500); overlay is M-50
  --idle-pings N        pings at 5 per second, how people ping (default 25)
  --busy-pings N        pings at 500 per second (default 300)
  --udp-senders N       iperf3 clients offering UDP at once (default 2: one alone is slower than the kernel)
  --udp-step-seconds S  seconds per offered rate in the UDP loss-free sweep (default 2)
  --transfer-mb N       size of the checked TCP transfer per run (default 16)
  --tsvtep-arg A        pass A to both daemons, e.g. --tsvtep-arg=--no-offload (repeatable)
  --out DIR             where to write JSON and SVG (default bench/results)`;

function parseOptions(argv: string[]): Options {
  const { values } = usage(() =>
    parseArgs({
      args: argv,
      options: {
        runs: { type: 'string', default: '3' },
        seconds: { type: 'string', default: '4' },
        'underlay-mtu': { type: 'string', default: '1500' },
        'idle-pings': { type: 'string', default: '25' },
        'busy-pings': { type: 'string', default: '300' },
        'udp-senders': { type: 'string', default: '2' },
        'udp-step-seconds': { type: 'string', default: '2' },
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
    idlePings: Math.floor(numberOption('idle-pings', values['idle-pings'] as string, 5, 10_000)),
    busyPings: Math.floor(numberOption('busy-pings', values['busy-pings'] as string, 10, 100_000)),
    udpSenders: Math.floor(numberOption('udp-senders', values['udp-senders'] as string, 1, 16)),
    udpStepSeconds: numberOption('udp-step-seconds', values['udp-step-seconds'] as string, 1, 60),
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

/** CPU time of the whole machine and of the daemons, and the daemons' memory, while `load` runs. */
async function watch<T>(variant: Variant, load: () => Promise<T>): Promise<{ result: T; machineCpu: number; daemonCpu: number; memory: Memory[] }> {
  const machineBefore = machineBusySeconds();
  if (variant.pids.length === 0) {
    const result = await load();
    return { result, machineCpu: machineBusySeconds() - machineBefore, daemonCpu: 0, memory: [] };
  }
  const cpuBefore = variant.pids.map(cpuSeconds);
  const sampler = sampleEvery(250, () => variant.pids.map(memory));
  // If a daemon dies, say so at once rather than wait for iperf3 to give up.
  const daemonDied = variant.exited.then(() => Promise.reject(new Error(variant.failure())));
  daemonDied.catch(() => undefined); // also stopped daemons at cleanup, after this measurement
  const outcome = await Promise.race([load(), daemonDied]).then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error: error ?? new Error('measurement failed') }),
  );
  const machineCpu = machineBusySeconds() - machineBefore;
  const { samples, error } = sampler.stop();
  // A daemon that died explains any failure best, so check that first.
  checkDaemonsAlive(variant);
  if (outcome.error !== undefined) throw outcome.error;
  if (error !== undefined) throw error;
  const daemonCpu = variant.pids.map(cpuSeconds).reduce((sum, after, i) => sum + after - cpuBefore[i], 0);
  return { result: outcome.value as T, machineCpu, daemonCpu, memory: samples.flat() };
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
  const ping = (count: number, intervalS: number, medianKey: string, p99Key: string): Step => async (v, sample) => {
    const [a, b] = pair(v);
    const p = await pingLatency(v.topology, a, b, count, intervalS);
    if (p.received < p.sent * 0.9) throw new Error(`${v.name}: ${p.sent - p.received} of ${p.sent} pings lost`);
    sample[medianKey] = p.medianMs;
    sample[p99Key] = p.p99Ms;
  };
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
        const { result, machineCpu, daemonCpu, memory: m } = await watch(v, () => tcpThroughput(v.topology, a, b, options.seconds, 1));
        sample.tcp1Gbps = result.gbps;
        // Core-seconds per gigabit is cores per Gbit/s, whatever the start-up time of iperf3.
        sample.cpuPerGbps = machineCpu / (result.gbps * options.seconds);
        sample.machineCoresTcp1 = machineCpu / options.seconds;
        if (v.pids.length > 0) {
          sample.daemonCoresTcp1 = daemonCpu / options.seconds;
          sample.daemonSharePct = (100 * daemonCpu) / machineCpu;
        }
        noteRss(sample, m);
      },
    },
    {
      name: 'TCP, 4 streams',
      run: async (v, sample) => {
        const [a, b] = pair(v);
        const { result, memory: m } = await watch(v, () => tcpThroughput(v.topology, a, b, options.seconds, 4));
        sample.tcp4Gbps = result.gbps;
        noteRss(sample, m);
      },
    },
    ...[64, 1400].map((payload) => ({
      name: `UDP, ${payload} B`,
      run: async (v: Variant, sample: Sample) => {
        const [a, b] = pair(v);
        const offer = (totalPps: number) =>
          udpOffered(v.topology, a, b, { seconds: options.udpStepSeconds, payload, totalPps, senders: options.udpSenders });
        const { result, memory: m } = await watch(v, () =>
          lossFreeRate(offer, { startPps: 10_000, factor: 1.6, maxSteps: 10, refine: 2, maxLossPct: 1 }),
        );
        sample[`udp${payload}LossFreeKpps`] = result.pps / 1000;
        sample[`udp${payload}SenderBound`] = result.senderBound ? 1 : 0;
        sample[`udp${payload}ReceiverDropPct`] = result.receiverDropPercent;
        sweeps.push({ variant: v.name, payload, ...result });
        noteRss(sample, m);
      },
    })),
    { name: 'ping at 5/s', run: ping(options.idlePings, 0.2, 'pingIdleMedianMs', 'pingIdleP99Ms') },
    { name: 'ping at 500/s', run: ping(options.busyPings, 0.002, 'pingBusyMedianMs', 'pingBusyP99Ms') },
  ];
}

/** Every UDP sweep, step by step, for the JSON report. */
const sweeps: ({ variant: VariantName; payload: number } & LossFreeRate)[] = [];

/** The underlay offloads of host 1 as ethtool shows them, to prove each lab kept the kernel's. */
async function underlayOffloads(variant: Variant): Promise<string> {
  const host = variant.topology.hosts[0];
  const out = await variant.topology.execOk(host.ns, ['ethtool', '-k', host.underlayIf]);
  const wanted = ['tx-checksumming', 'tcp-segmentation-offload', 'generic-segmentation-offload', 'generic-receive-offload'];
  return out
    .split('\n')
    .map((line) => /^([a-z-]+): (on|off)/.exec(line.trim()))
    .filter((m): m is RegExpExecArray => m !== null && wanted.includes(m[1]))
    .map((m) => `${m[1]} ${m[2]}`)
    .join(', ');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  await preflight();
  const startedAt = new Date();
  const shape = { underlayMtu: options.underlayMtu, tsvtepArgs: options.tsvtepArgs };
  console.log(
    `tsvtep system benchmark: ${options.runs} run(s), ${options.seconds} s per TCP measurement, ` +
      `underlay MTU ${shape.underlayMtu}, overlay (containers') MTU ${shape.underlayMtu - VXLAN_OVERHEAD}` +
      (options.tsvtepArgs.length > 0 ? `, tsvtep ${options.tsvtepArgs.join(' ')}` : ''),
  );
  console.log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} CPU(s)`);

  const variants: Variant[] = [];
  for (const name of VARIANT_NAMES) variants.push(await VARIANTS[name](shape, created));
  const tsvtep = variants.find((v) => v.name === 'tsvtep') as Variant;
  for (const pid of tsvtep.pids) {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes('cli.js')) throw new Error(`PID ${pid} is not the tsvtep daemon (${cmdline.replace(/\0/g, ' ')})`);
  }
  console.log('what differs between the labs (all else is the same):');
  const offloads: Record<string, string> = {};
  for (const v of variants) {
    offloads[v.name] = await underlayOffloads(v);
    console.log(`  ${v.name.padEnd(6)}  ${VARIANT_DIFFERENCES[v.name]}`);
  }
  console.log('underlay offloads, as the kernel creates a veth (host 1):');
  for (const v of variants) console.log(`  ${v.name.padEnd(6)}  ${offloads[v.name]}`);
  console.log(
    `UDP: loss-free rate = highest rate offered by ${options.udpSenders} iperf3 sender(s) with <= 1 % lost in the tunnel, ` +
      `${options.udpStepSeconds} s per step (what the receiving iperf3's full socket dropped is shown apart)`,
  );
  const idle = tsvtep.pids.map(memory);
  console.log(`tsvtep VmRSS right after start, idle: ${idle.map((m) => `${m.rssMb.toFixed(1)} MB`).join(', ')} (hosts 1, 2)`);
  const samples: Record<VariantName, Sample[]> = { kernel: [], tsvtep: [], wire: [] };

  for (let run = 1; run <= options.runs; run++) {
    const current: Record<VariantName, Sample> = { kernel: {}, tsvtep: {}, wire: {} };
    // Alternate the order (k t w, w t k, ...) so that no lab always goes first.
    const order = run % 2 === 1 ? variants : [...variants].reverse();
    for (const step of steps(options)) {
      for (const variant of order) {
        process.stdout.write(`run ${run}/${options.runs}  ${step.name.padEnd(16)}  ${variant.name.padEnd(6)} ... `);
        await step.run(variant, current[variant.name]);
        checkDaemonsAlive(tsvtep);
        console.log(describe(current[variant.name], step.name));
      }
    }
    current.tsvtep.hwmMb = Math.max(...tsvtep.pids.map((pid) => memory(pid).hwmMb));
    for (const name of VARIANT_NAMES) samples[name].push(current[name]);
  }

  const summary = summarise(samples);
  const finishedAt = new Date();
  console.log('');
  console.log(formatTable(summary));
  console.log(`\nchecked transfers: ${options.runs} per lab of ${options.transferMb} MB, SHA-256 equal on both ends every time`);
  if (options.runs < 3) console.log(`note: ${options.runs} run(s) only; medians need 3 or more to mean much`);

  mkdirSync(options.out, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const jsonPath = path.join(options.out, `system-${stamp}.json`);
  const svgPath = path.join(options.out, `system-${stamp}.svg`);
  const report = {
    benchmark: 'tsvtep system benchmark against kernel vxlan, with a plain veth as the ceiling',
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    options: { ...options, overlayMtu: options.underlayMtu - VXLAN_OVERHEAD },
    labs: Object.fromEntries(VARIANT_NAMES.map((n) => [n, { differs: VARIANT_DIFFERENCES[n], underlayOffloads: offloads[n] }])),
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
    udpSweeps: sweeps,
    summary,
  };
  writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
  const extra = options.tsvtepArgs.length > 0 ? `; tsvtep ${options.tsvtepArgs.join(' ')}` : '';
  const subtitle = `medians of ${options.runs} run(s); underlay MTU ${options.underlayMtu}, offloads as created${extra}; ${startedAt.toISOString().slice(0, 16)}Z`;
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
      return (
        `${f(sample.tcp1Gbps, 2)} Gbit/s, machine ${f(sample.machineCoresTcp1, 2)} cores` +
        (sample.daemonCoresTcp1 === undefined ? '' : `, daemons ${f(sample.daemonCoresTcp1, 2)} cores`)
      );
    case 'TCP, 4 streams':
      return `${f(sample.tcp4Gbps, 2)} Gbit/s`;
    case 'UDP, 64 B':
    case 'UDP, 1400 B': {
      const payload = step === 'UDP, 64 B' ? 64 : 1400;
      return (
        `loss-free ${f(sample[`udp${payload}LossFreeKpps`], 1)} kpps${sample[`udp${payload}SenderBound`] === 1 ? ' (sender-bound)' : ''}` +
        `, receiving iperf3 dropped ${f(sample[`udp${payload}ReceiverDropPct`], 1)} %`
      );
    }
    case 'ping at 5/s':
      return `median ${f(sample.pingIdleMedianMs, 3)} ms, p99 ${f(sample.pingIdleP99Ms, 3)} ms`;
    case 'ping at 500/s':
      return `median ${f(sample.pingBusyMedianMs, 3)} ms, p99 ${f(sample.pingBusyP99Ms, 3)} ms`;
    default:
      return '';
  }
}

runBenchmark('benchmark', USAGE, main, cleanup);
