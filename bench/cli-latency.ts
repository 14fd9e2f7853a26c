// How fast does `tsvtep status` answer, idle and while the data plane
// forwards a flood of 64-byte frames? Two namespace hosts with tsvtep; the
// median of N runs of the CLI (a new Node process each, as a person runs it,
// under `ip netns exec`), and beside it how long the daemon itself takes to
// answer GET /networks on its control socket (from this process). Then the
// same while iperf3 sends 64-byte frames (18-byte UDP payloads) as fast as
// it can from container 1 to container 2. Prints medians and the load
// average, since figures from a loaded machine are not worth much.
//
//   npm run bench:cli [-- --runs 20 --flood-rate 0]

import http from 'node:http';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { defaultControlPath } from '../src/control/endpoint';
import { waitForPing } from '../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../src/lab/process';
import { runCommand, stopProcess, Topology } from '../src/lab/topology';
import { median, percentile } from './measure';
import { helpRequested, numberOption, runBenchmark } from './options';

const VNI = 100;
/** 18 bytes of UDP payload: 18 + 8 + 20 + 14 = 60 bytes of frame, 64 with the FCS. */
const FLOOD_PAYLOAD = 18;

const USAGE = `usage: npm run bench:cli -- [options]
  --runs N        runs of \`tsvtep status\` per phase (default 20)
  --flood-rate R  iperf3 -b of the 64-byte flood (default 0: as fast as it can)`;

interface Options {
  runs: number;
  floodRate: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '20' },
      'flood-rate': { type: 'string', default: '0' },
      help: { type: 'boolean', default: false },
    },
  });
  helpRequested(values.help, USAGE);
  return { runs: Math.floor(numberOption('runs', values.runs as string, 3, 1000)), floodRate: values['flood-rate'] as string };
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

/** Milliseconds for one `tsvtep status` in ns, from spawning `ip netns exec` to its exit. */
async function cliOnce(ns: string): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await runCommand('ip', ['netns', 'exec', ns, process.execPath, CLI_PATH, 'status'], 30_000);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.code !== 0 || !result.stdout.includes(`tsv${VNI}`)) throw new Error(`tsvtep status failed (exit ${result.code}): ${result.stderr.trim()}`);
  return ms;
}

/** Milliseconds for the daemon to answer GET /networks on its Unix socket. */
function daemonOnce(socketPath: string): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const request = http.get({ socketPath, path: '/networks', timeout: 30_000 }, (response) => {
      response.resume();
      response.on('end', () => (response.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`HTTP ${response.statusCode}`))));
    });
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error('timed out')));
  });
}

interface Phase {
  cliMs: number[];
  daemonMs: number[];
  loadAverage: number;
}

async function measure(ns: string, socketPath: string, runs: number): Promise<Phase> {
  const cliMs: number[] = [];
  const daemonMs: number[] = [];
  // Alternate the two, so both see the same conditions.
  for (let i = 0; i < runs; i++) {
    cliMs.push(await cliOnce(ns));
    daemonMs.push(await daemonOnce(socketPath));
  }
  return { cliMs, daemonMs, loadAverage: os.loadavg()[0] };
}

function describe(name: string, phase: Phase): string {
  const f = (values: number[]) => `median ${median(values).toFixed(1)} ms (p90 ${percentile(values, 90).toFixed(1)})`;
  return `${name.padEnd(6)} tsvtep status: ${f(phase.cliMs)}; daemon answers GET /networks: ${f(phase.daemonMs)}; load average ${phase.loadAverage.toFixed(2)}`;
}

async function txFrames(lab: Topology, ns: string): Promise<number> {
  const out = await lab.execOk(ns, [process.execPath, CLI_PATH, 'status', '--json']);
  return (JSON.parse(out) as { networks: { counters: { txFrames: number } }[] }).networks[0].counters.txFrames;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('the benchmark builds network namespaces: run it as root');
  const lab = await Topology.create({ hosts: 2, vnis: [VNI], ipv6: false });
  topology = lab;
  const daemons: DaemonProcess[] = [];
  for (const host of lab.hosts) {
    daemons.push(await startDaemon(lab, host.ns, ['--vni', String(VNI), '--bridge', host.bridges.get(VNI) as string, '--peer', lab.hosts[1 - host.index].underlayIp]));
  }
  const [a, b] = [lab.container(0), lab.container(1)];
  if (!(await waitForPing(lab, a, b.ip))) throw new Error('containers cannot ping each other');
  const h1 = lab.hosts[0].ns;
  const socketPath = defaultControlPath(4789, `/run/netns/${h1}`);
  console.log(`cores ${os.cpus().length}, load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  await cliOnce(h1); // warm the file cache
  const idle = await measure(h1, socketPath, options.runs);
  console.log(describe('idle', idle));

  const server = lab.spawn(b.ns, ['iperf3', '-s', '-B', b.ip]);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const client = lab.spawn(a.ns, ['iperf3', '-c', b.ip, '-u', '-l', String(FLOOD_PAYLOAD), '-b', options.floodRate, '-t', '600']);
  try {
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const framesBefore = await txFrames(lab, h1);
    const startedAt = Date.now();
    const flooded = await measure(h1, socketPath, options.runs);
    const frames = (await txFrames(lab, h1)) - framesBefore;
    console.log(describe('flood', flooded));
    console.log(`        host 1 forwarded ${(frames / (Date.now() - startedAt)).toFixed(0)} kpps of 64-byte frames meanwhile`);
    console.log(`ratio flood/idle (tsvtep status medians): ${(median(flooded.cliMs) / median(idle.cliMs)).toFixed(2)}`);
  } finally {
    await stopProcess(client, 2_000);
    await stopProcess(server, 2_000);
  }
  for (const daemon of daemons) if (daemon.child.exitCode !== null) throw new Error(`a tsvtep daemon exited:\n${daemon.log()}`);
}

runBenchmark('CLI latency benchmark', USAGE, main, cleanup);
