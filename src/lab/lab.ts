// `tsvtep lab`: the tutorials' multi-host lab on one machine. `up` builds the
// topology (hosts, bridges and containers in network namespaces named
// PREFIX-…) and starts tsvtep on each host as a process of its own that
// outlives `up`; `check` runs the tutorials' checks against it; `down` removes
// it all, also after a crash of `up`.
//
// What `up` started is written to a state file (JSON) in STATE_DIR/PREFIX/,
// next to the daemons' logs and config files: `check` and `down` read it.
// `down` stops processes only by the PIDs it finds there (checked against
// their start time) or inside the lab's own namespaces (`ip netns pids`),
// then deletes every namespace named PREFIX-…, then the state directory.

import { existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { controlRequest } from '../control/client';
import { baseChecks } from '../host-checks';
import { defaultControlPath } from '../control/endpoint';
import { fdbText, peersText, statusText, table, type FdbView, type NetworksReply, type PeerView } from '../control/views';
import { ping, tcpTransfer, waitForPing } from './checks';
import { addKernelVxlan } from './kernel';
import { CLI_PATH, isRunning, processStartTime, startDetachedDaemon, stopPid } from './process';
import { namespacesByPrefix, removeByPrefix, runCommand, Topology, type Container, type TopologyOptions } from './topology';

export const LAB_PREFIX = 'tsvlab';
export const STATE_DIR = '/run/tsvtep/lab';
const VXLAN_PORT = 4789;
/** The kernel's vxlan device takes the underlay's MTU (1500) minus 50; its bridge and containers must not exceed it. */
const KERNEL_VXLAN_MTU = 1450;
/** Host (index) that runs the kernel's vxlan instead of tsvtep with --with-kernel: host 2, as in the interop tests. */
const KERNEL_HOST = 1;
const TRANSFER_BYTES = 32 * 1024 * 1024;
/** An address no container has: isolation is checked by pinging it across networks. */
const PROBE_IP = '172.18.0.250';

export interface LabOptions {
  prefix: string;
  hosts: number;
  routed: boolean;
  vnis: number[];
  withKernel: boolean;
}

interface HostState {
  ns: string;
  underlayIp: string;
  vtep: 'tsvtep' | 'kernel';
  /** tsvtep: the daemon, its files and its control socket. */
  pid?: number;
  startTime?: number;
  log?: string;
  config?: string;
  control?: string;
  /** kernel: the vxlan devices. */
  devices?: string[];
}

export interface LabState {
  version: 1;
  prefix: string;
  options: LabOptions;
  containerMtu: number;
  /** 'building' until `up` has started every VTEP. */
  status: 'building' | 'up';
  createdAt: string;
  hosts: HostState[];
}

/** A failure a person can act on; the command prints its message as one line. */
export class LabError extends Error {}

/**
 * Prints what happens as it happens: each step is one line, its label first
 * and its outcome once done; a step that takes longer than a second prints a
 * dot a second meanwhile.
 */
export class Progress {
  constructor(private readonly write: (text: string) => void) {}

  line(text = ''): void {
    this.write(`${text}\n`);
  }

  async step<T>(label: string, fn: () => Promise<T>, outcome: (result: T) => string = () => 'ok'): Promise<T> {
    this.write(`  ${label} … `);
    const started = Date.now();
    let dotted = false;
    const dots = setInterval(() => {
      this.write('.');
      dotted = true;
    }, 1_000);
    const end = (text: string): void => {
      clearInterval(dots);
      const seconds = (Date.now() - started) / 1000;
      this.write(`${dotted ? ' ' : ''}${text}${seconds >= 1 ? ` (${seconds.toFixed(1)} s)` : ''}\n`);
    };
    try {
      const result = await fn();
      end(outcome(result));
      return result;
    } catch (error) {
      end('failed');
      throw error;
    }
  }
}

export function labDir(prefix: string): string {
  return path.join(STATE_DIR, prefix);
}

function statePath(prefix: string): string {
  return path.join(labDir(prefix), 'state.json');
}

/** The state file, or undefined if there is none or it cannot be read (then `down` still sweeps by prefix). */
export function readState(prefix: string): LabState | undefined {
  try {
    const state = JSON.parse(readFileSync(statePath(prefix), 'utf8')) as LabState;
    return state.version === 1 && state.prefix === prefix ? state : undefined;
  } catch {
    return undefined;
  }
}

function writeState(state: LabState): void {
  const file = statePath(state.prefix);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

function topologyOptions(state: Pick<LabState, 'prefix' | 'options' | 'containerMtu'>): TopologyOptions & { prefix: string } {
  const { hosts, routed, vnis } = state.options;
  // IPv4 only inside and outside, as in the tutorials.
  return { prefix: state.prefix, hosts, routed, vnis, containerMtu: state.containerMtu, ipv6: false };
}

/** Every namespace the lab consists of. */
function labNamespaces(topology: Topology): string[] {
  return [topology.coreNs, ...topology.hosts.flatMap((h) => [h.ns, ...h.containers.map((c) => c.ns)])];
}

/** One line: what the lab consists of. */
export function describeLab(state: LabState): string {
  return `${describeOptions(state.options)}; containers' MTU ${state.containerMtu}`;
}

export function describeOptions(options: LabOptions): string {
  const underlay = options.routed ? 'each in its own subnet behind a router' : 'on one underlay segment';
  const vnis = options.vnis.length === 1 ? `VNI ${options.vnis[0]}` : `VNIs ${options.vnis.join(', ')}`;
  const kernel = options.withKernel ? `, host ${KERNEL_HOST + 1} with the kernel's vxlan` : '';
  return `${options.hosts} hosts ${underlay}, ${vnis}${kernel}`;
}

function sameOptions(a: LabOptions, b: LabOptions): boolean {
  return a.hosts === b.hosts && a.routed === b.routed && a.withKernel === b.withKernel && a.vnis.join(',') === b.vnis.join(',');
}

/** Whether everything the state describes exists: every namespace, and every tsvtep still running. */
async function isWhole(state: LabState): Promise<boolean> {
  const present = new Set(await namespacesByPrefix(`${state.prefix}-`));
  if (!labNamespaces(Topology.attach(topologyOptions(state))).every((ns) => present.has(ns))) return false;
  return state.hosts.every((h) => h.vtep === 'kernel' || (h.pid !== undefined && isRunning(h.pid, h.startTime ?? 0)));
}

function configYaml(prefix: string, ns: string, vnis: number[], peers: string[]): string {
  const lines = [`# ${ns}: written by \`tsvtep lab up\` (lab ${prefix})`, 'networks:'];
  for (const vni of vnis) lines.push(`  - vni: ${vni}`, `    bridge: br${vni}`, `    peers: [${peers.join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

/** The daemon's own one-line error (`tsvtep: …`) from its log, else the log's last line. */
function lastWords(log: string): string {
  const lines = log.trim().split('\n');
  return (lines.find((line) => line.startsWith('tsvtep: ')) ?? lines[lines.length - 1] ?? '').replace(/^tsvtep: /, '');
}

/**
 * Builds the lab and starts its VTEPs. If the same lab is already up, changes
 * nothing and says so (already: true); if one with other options is up, fails
 * and asks for `down`; leftovers of a crashed or interrupted run are removed
 * first. If building fails (or `abort` fires), what was built is removed.
 */
export async function labUp(options: LabOptions, progress: Progress, abort?: AbortSignal): Promise<{ state: LabState; already: boolean }> {
  const { prefix } = options;
  const existing = readState(prefix);
  if (existing?.status === 'up' && (await isWhole(existing))) {
    if (!sameOptions(existing.options, options)) {
      throw new LabError(`lab ${prefix} is already up with ${describeOptions(existing.options)}; run \`tsvtep lab down\` first to build another`);
    }
    return { state: existing, already: true };
  }
  // What `tsvtep doctor` checks first, before anything is built.
  const hostProblems = (await baseChecks()).filter((check) => check.status === 'fail');
  if (hostProblems.length > 0) {
    const problems = hostProblems.map((check) => `${check.name}: ${check.detail}`).join('; ');
    throw new LabError(`this host cannot run tsvtep (${problems}); tsvtep doctor checks it all`);
  }
  const leftovers = await namespacesByPrefix(`${prefix}-`);
  if (existing || leftovers.length > 0 || existsSync(labDir(prefix))) {
    progress.line(`Found leftovers of an earlier lab ${prefix}; removing them first.`);
    await labDown(prefix, progress);
    progress.line();
  }

  const dir = labDir(prefix);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const state: LabState = {
    version: 1,
    prefix,
    options,
    containerMtu: options.withKernel ? KERNEL_VXLAN_MTU : 1500,
    status: 'building',
    createdAt: new Date().toISOString(),
    hosts: [],
  };
  writeState(state);
  const guard = (): void => {
    if (abort?.aborted) throw new LabError('interrupted');
  };

  try {
    progress.line(`Building lab ${prefix}: ${describeOptions(options)}.`);
    const topology = await Topology.create(topologyOptions(state), (label, fn) => {
      guard();
      return progress.step(label, fn);
    });
    for (const host of topology.hosts) {
      const peers = topology.hosts.filter((h) => h !== host).map((h) => h.underlayIp);
      const entry: HostState = { ns: host.ns, underlayIp: host.underlayIp, vtep: 'tsvtep' };
      if (options.withKernel && host.index === KERNEL_HOST) {
        entry.vtep = 'kernel';
        entry.devices = [];
        for (const vni of options.vnis) {
          guard();
          const label = `${host.ns}: kernel vxlan vx${vni} (VNI ${vni}, dstport ${VXLAN_PORT}, MTU ${KERNEL_VXLAN_MTU}) on br${vni}, peers ${peers.join(', ')}`;
          entry.devices.push(await progress.step(label, () => addKernelVxlan(topology, host, { vni, peers, port: VXLAN_PORT })));
        }
      } else {
        guard();
        const name = `h${host.index + 1}`;
        entry.config = path.join(dir, `${name}.yaml`);
        entry.log = path.join(dir, `${name}.log`);
        writeFileSync(entry.config, configYaml(prefix, host.ns, options.vnis, peers));
        const label = `${host.ns}: tsvtep, ${options.vnis.length === 1 ? 'VNI' : 'VNIs'} ${options.vnis.join(', ')}, peers ${peers.join(', ')}`;
        const log = entry.log;
        const daemon = await progress.step(
          label,
          () =>
            startDetachedDaemon(host.ns, ['--config', entry.config as string], log).catch((error: Error) => {
              throw new LabError(`tsvtep on ${host.ns} did not start: ${lastWords(error.message)}`);
            }),
          (d) => `pid ${d.pid}`,
        );
        entry.pid = daemon.pid;
        entry.startTime = daemon.startTime;
        entry.control = defaultControlPath(VXLAN_PORT, `/run/netns/${host.ns}`);
      }
      state.hosts.push(entry);
      writeState(state);
    }
    guard();
    state.status = 'up';
    writeState(state);
    return { state, already: false };
  } catch (error) {
    const message = (error as Error).message.split('\n')[0];
    progress.line();
    progress.line(`lab up failed: ${message}; removing what it built.`);
    await labDown(prefix, progress);
    throw new LabError(`${message} (what it had built is removed again)`);
  }
}

/**
 * Stops the lab's processes and removes its namespaces and state directory.
 * Works from the state file when there is one and by name prefix always.
 * Returns false if there was nothing to remove.
 */
export async function labDown(prefix: string, progress: Progress): Promise<boolean> {
  const state = readState(prefix);
  const dir = labDir(prefix);
  let namespaces = await namespacesByPrefix(`${prefix}-`);
  if (!state && namespaces.length === 0 && !existsSync(dir)) return false;

  const daemons = (state?.hosts ?? []).filter((h) => h.pid !== undefined);
  if (daemons.length > 0) {
    const label = `stopping tsvtep ${daemons.map((h) => `on ${h.ns} (pid ${h.pid})`).join(', ')}`;
    await progress.step(
      label,
      () => Promise.all(daemons.map((h) => stopPid(h.pid as number, h.startTime ?? 0, 5_000))),
      (outcomes) => outcomes.map((how) => (how === 'gone' ? 'was not running' : how)).join(', '),
    );
    // A daemon that had to be killed leaves its control socket behind.
    for (const h of daemons) if (h.control && existsSync(h.control)) unlinkSync(h.control);
  }
  // Anything else still inside the lab's namespaces belongs to the lab: a
  // daemon `up` started but had not recorded when it crashed, a ping left running.
  for (const ns of namespaces) {
    const { stdout } = await runCommand('ip', ['netns', 'pids', ns], 10_000);
    for (const pid of stdout.split('\n').filter((line) => /^\d+$/.test(line)).map(Number)) {
      const startTime = processStartTime(pid);
      if (startTime === undefined) continue;
      let command = '';
      try {
        command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      } catch {
        continue; // exited meanwhile
      }
      await progress.step(`stopping pid ${pid} left in ${ns} (${command.slice(0, 100)})`, () => stopPid(pid, startTime, 5_000), (how) =>
        how === 'gone' ? 'was not running' : how,
      );
    }
  }
  if (namespaces.length > 0) {
    const shown = namespaces.length > 4 ? `${namespaces.slice(0, 4).join(', ')}, …` : namespaces.join(', ');
    await progress.step(`deleting ${namespaces.length} namespace${namespaces.length === 1 ? '' : 's'} (${shown}) and their links`, async () => {
      await removeByPrefix(`${prefix}-`);
      namespaces = await namespacesByPrefix(`${prefix}-`);
      if (namespaces.length > 0) throw new LabError(`could not delete namespaces ${namespaces.join(', ')}`);
    });
  }
  if (existsSync(dir)) {
    await progress.step(`removing ${dir} (state, logs, configs)`, async () => rmSync(dir, { recursive: true, force: true }));
  }
  try {
    rmdirSync(STATE_DIR); // only if no other lab lives there
  } catch {
    // Not empty, or already gone.
  }
  return true;
}

interface CheckOutcome {
  ok: boolean;
  figures: string;
}

/**
 * Runs the tutorials' checks against the lab that is up, prints each with
 * pass/FAIL and its figures, then every VTEP's FDB and counters. Resolves
 * with how many passed and failed.
 */
export async function labCheck(prefix: string, progress: Progress): Promise<{ passed: number; failed: number }> {
  const state = readState(prefix);
  if (!state) throw new LabError(`no lab ${prefix} is up (sudo tsvtep lab up builds one)`);
  if (state.status !== 'up') {
    throw new LabError(`lab ${prefix} was not completely built (\`lab up\` failed or is still running); sudo tsvtep lab down removes it`);
  }
  const topology = Topology.attach(topologyOptions(state));
  const { vnis } = state.options;
  let passed = 0;
  let failed = 0;
  const check = async (label: string, fn: () => Promise<CheckOutcome>): Promise<void> => {
    const outcome = await progress.step(
      label,
      () => fn().catch((error: Error): CheckOutcome => ({ ok: false, figures: error.message.split('\n')[0] })),
      (o) => `${o.ok ? 'pass' : 'FAIL'}  ${o.figures}`,
    );
    if (outcome.ok) passed++;
    else failed++;
  };

  try {
    progress.line(`Checking lab ${prefix}: ${describeOptions(state.options)}.`);
    progress.line();
    progress.line('VTEPs');
    for (const host of state.hosts) {
      if (host.vtep === 'kernel') {
        await check(`${host.ns}: kernel vxlan ${(host.devices ?? []).join(', ')} up`, () => kernelDevicesUp(topology, host));
      } else {
        await check(`${host.ns}: tsvtep pid ${host.pid} running, answers on its control socket`, () => daemonAnswers(host));
      }
    }

    progress.line();
    progress.line('Ping between containers, inside each network');
    for (const vni of vnis) {
      for (const from of topology.hosts) {
        for (const to of topology.hosts) {
          if (from === to) continue;
          const [a, b] = [topology.container(from.index, vni), topology.container(to.index, vni)];
          await check(`VNI ${vni}: ${a.ns} (${a.ip}) → ${b.ip} on ${to.ns}`, () => pingCheck(topology, a, b.ip));
        }
      }
    }

    if (vnis.length > 1) {
      progress.line();
      progress.line(`Isolation: ${PROBE_IP}, added to a container of one network, must not answer from another network`);
      for (const inside of vnis) {
        for (const across of vnis) {
          if (inside === across) continue;
          const target = topology.container(1, inside);
          await check(`${PROBE_IP} on ${target.ns}: from VNI ${across} (${topology.container(0, across).ns})`, () =>
            isolationCheck(topology, target, topology.container(0, inside), topology.container(0, across)),
          );
        }
      }
    }

    progress.line();
    progress.line(`TCP transfer, ${TRANSFER_BYTES / 1024 / 1024} MiB of random bytes, sha256 compared on both ends`);
    for (const vni of vnis) {
      for (const [from, to] of [[0, 1], [1, 0]]) {
        const [a, b] = [topology.container(from, vni), topology.container(to, vni)];
        await check(`VNI ${vni}: ${a.ns} → ${b.ip}:5001 on ${topology.hosts[to].ns}`, () => transferCheck(topology, a, b));
      }
    }

    progress.line();
    progress.line('FDB and counters');
    for (const host of state.hosts) progress.line(await vtepReport(topology, host));
    progress.line(`${passed} of ${passed + failed} checks passed${failed > 0 ? `, ${failed} failed` : ''}.`);
    return { passed, failed };
  } finally {
    await topology.destroy(); // stops any check process still running; deletes nothing
  }
}

async function daemonAnswers(host: HostState): Promise<CheckOutcome> {
  if (host.pid === undefined || !isRunning(host.pid, host.startTime ?? 0)) {
    return { ok: false, figures: `not running (its log: ${host.log})` };
  }
  const reply = (await controlRequest({ kind: 'unix', path: host.control as string }, 'GET', '/networks')) as NetworksReply;
  const networks = reply.networks.map((n) => `VNI ${n.vni} on ${n.bridge} via ${n.tap} (MTU ${n.tapMtu})`);
  return { ok: true, figures: networks.join('; ') };
}

async function kernelDevicesUp(topology: Topology, host: HostState): Promise<CheckOutcome> {
  const links = JSON.parse(await topology.execOk(host.ns, ['ip', '-j', 'link', 'show', 'type', 'vxlan'])) as { ifname: string; flags: string[]; mtu: number }[];
  const missing = (host.devices ?? []).filter((d) => !links.some((l) => l.ifname === d && l.flags.includes('UP')));
  if (missing.length > 0) return { ok: false, figures: `${missing.join(', ')} missing or down` };
  return { ok: true, figures: links.map((l) => `${l.ifname} MTU ${l.mtu}`).join('; ') };
}

async function pingCheck(topology: Topology, from: Container, address: string): Promise<CheckOutcome> {
  // The first answer may take a moment: ARP, and both VTEPs learn the MACs.
  if (!(await waitForPing(topology, from, address, 10_000))) return { ok: false, figures: 'no answer within 10 s' };
  const result = await ping(topology, from, address, { count: 5 });
  const figures = `${result.received}/${result.sent} replies, rtt median ${result.rttMedianMs.toFixed(3)} ms`;
  return { ok: result.sent > 0 && result.received === result.sent, figures };
}

/**
 * Adds PROBE_IP to target; it must answer from target's own network (else
 * the check proves nothing) and must not from another network's container.
 */
async function isolationCheck(topology: Topology, target: Container, sameNetwork: Container, otherNetwork: Container): Promise<CheckOutcome> {
  await topology.execOk(target.ns, ['ip', 'addr', 'add', `${PROBE_IP}/16`, 'dev', 'eth0']);
  try {
    if (!(await waitForPing(topology, sameNetwork, PROBE_IP, 10_000))) {
      return { ok: false, figures: `${PROBE_IP} does not answer inside VNI ${target.vni} either, so isolation is not shown` };
    }
    const across = await ping(topology, otherNetwork, PROBE_IP, { count: 3, timeoutS: 1 });
    return {
      ok: across.sent > 0 && across.received === 0,
      figures: `${across.received}/${across.sent} replies from VNI ${otherNetwork.vni}; it answers inside VNI ${target.vni}`,
    };
  } finally {
    await topology.exec(target.ns, ['ip', 'addr', 'del', `${PROBE_IP}/16`, 'dev', 'eth0']);
    for (const c of [sameNetwork, otherNetwork]) await topology.exec(c.ns, ['ip', 'neigh', 'flush', 'to', PROBE_IP]);
  }
}

async function transferCheck(topology: Topology, from: Container, to: Container): Promise<CheckOutcome> {
  const result = await tcpTransfer(topology, from, to, { bytes: TRANSFER_BYTES, timeoutMs: 120_000 });
  const intact = result.receivedBytes === result.bytes && result.receivedSha256 === result.sentSha256;
  const size = `${(result.receivedBytes / 1024 / 1024).toFixed(1)} MiB in ${result.seconds.toFixed(2)} s, ${result.mbps.toFixed(0)} Mbit/s`;
  return { ok: intact, figures: `${size}, ${intact ? `sha256 equal (${result.sentSha256.slice(0, 12)}…)` : 'bytes differ'}` };
}

/** A VTEP's FDB and counters: tsvtep's through its control socket, the kernel's through `bridge` and `ip -s`. */
async function vtepReport(topology: Topology, host: HostState): Promise<string> {
  try {
    if (host.vtep === 'kernel') {
      let text = '';
      for (const device of host.devices ?? []) {
        const [link] = JSON.parse(await topology.execOk(host.ns, ['ip', '-s', '-j', 'link', 'show', device])) as {
          stats64: { rx: { packets: number; dropped: number }; tx: { packets: number; dropped: number } };
        }[];
        const { rx, tx } = link.stats64;
        text += `${device}: rx ${rx.packets} packets (${rx.dropped} dropped), tx ${tx.packets} packets (${tx.dropped} dropped); bridge fdb show dev ${device}:\n`;
        text += await topology.execOk(host.ns, ['bridge', 'fdb', 'show', 'dev', device]);
      }
      return `  ${host.ns} (kernel vxlan)\n${indent(text, '    ')}`;
    }
    const endpoint = { kind: 'unix' as const, path: host.control as string };
    const [networks, fdb, peers] = await Promise.all([
      controlRequest(endpoint, 'GET', '/networks') as Promise<NetworksReply>,
      controlRequest(endpoint, 'GET', '/fdb') as Promise<{ entries: FdbView[] }>,
      controlRequest(endpoint, 'GET', '/peers') as Promise<{ peers: PeerView[] }>,
    ]);
    const text = `${statusText(networks)}\n${peersText(peers.peers)}\n${fdbText(fdb.entries, networks.networks)}`;
    return `  ${host.ns} (tsvtep pid ${host.pid})\n${indent(text, '    ')}`;
  } catch (error) {
    return `  ${host.ns}: cannot read its FDB and counters: ${(error as Error).message}\n`;
  }
}

/** How to run tsvtep here: the installed command if there is one, else node and the built file. */
function cliCommand(): string {
  const installed = (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      return dir !== '' && statSync(path.join(dir, 'tsvtep')).isFile();
    } catch {
      return false;
    }
  });
  return installed ? 'tsvtep' : `${process.execPath} ${CLI_PATH}`;
}

/** What `up` built, as a short map (see describeLab for the one-line summary), and commands to try. */
export function labMap(state: LabState): string {
  const topology = Topology.attach(topologyOptions(state));
  const { options } = state;
  const lines: string[] = [];
  const rows: string[][] = [];
  rows.push([
    topology.coreNs,
    options.routed ? `router ${topology.hosts.map((h) => `10.0.${h.index + 1}.1`).join(', ')}` : 'switch sw, 10.0.1.0/24',
    'the underlay',
    '',
  ]);
  for (const [i, host] of topology.hosts.entries()) {
    const recorded = state.hosts[i];
    const vtep = recorded?.vtep === 'kernel' ? "kernel's vxlan" : `tsvtep pid ${recorded?.pid ?? '?'}`;
    rows.push([host.ns, `eth0 ${host.underlayIp}`, vtep, recorded?.log ? `log ${recorded.log}` : '']);
    for (const c of host.containers) {
      const device = recorded?.vtep === 'kernel' ? `vx${c.vni}` : `tsv${c.vni}`;
      rows.push([`  ${c.ns}`, `eth0 ${c.ip}`, `VNI ${c.vni}: br${c.vni} + ${device}`, `MAC ${c.mac}`]);
    }
  }
  lines.push(indent(table(rows)));

  const cli = cliCommand();
  const prefixFlag = state.prefix === LAB_PREFIX ? '' : ` --prefix ${state.prefix}`;
  const [c1, c2] = [topology.container(0), topology.container(1)];
  const tsvtepHost = state.hosts.find((h) => h.vtep === 'tsvtep') ?? state.hosts[0];
  const tries: [string, string][] = [
    [`sudo ip netns exec ${c1.ns} ping -c 3 ${c2.ip}`, `container on ${topology.hosts[0].ns} to container on ${topology.hosts[1].ns}`],
    [`sudo ip netns exec ${tsvtepHost.ns} ${cli} fdb show`, 'the MACs tsvtep has learned, and where'],
    [`sudo ip netns exec ${tsvtepHost.ns} ${cli} status`, 'networks, MTUs and counters'],
    [`sudo ip netns exec ${tsvtepHost.ns} tcpdump -ni eth0 udp port ${VXLAN_PORT}`, 'the VXLAN datagrams on the underlay'],
    [`sudo ${cli} lab check${prefixFlag}`, 'ping, isolation, TCP transfer, FDB and counters'],
    [`sudo ${cli} lab down${prefixFlag}`, 'remove it all'],
  ];
  if (options.vnis.length > 1) {
    const other = topology.container(0, options.vnis[1]);
    tries.splice(1, 0, [`sudo ip netns exec ${other.ns} ping -c 3 ${c2.ip}`, `the same address in VNI ${options.vnis[1]}: another container answers`]);
  }
  lines.push('Try:', indent(table(tries.map(([command, what]) => [command, `# ${what}`]))));
  return lines.join('\n');
}

function indent(text: string, by = '  '): string {
  return text.replace(/^(?=.)/gm, by);
}
