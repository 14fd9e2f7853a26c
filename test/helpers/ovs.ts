// Open vSwitch for the tests: one ovsdb-server + ovs-vswitchd pair per "host"
// namespace, started inside it, with a private run directory (OVS_RUNDIR,
// OVS_DBDIR, OVS_LOGDIR, OVS_SYSCONFDIR) and a fresh database, never the
// machine's. OVS daemons are per machine, not per namespace, so each host gets
// its own pair. Both are our children (no --detach) and are stopped by PID.
//
// The kernel datapath is not available on these machines, so bridges use the
// userspace one (datapath_type=netdev). With it, OVS's own vxlan ports need
// the underlay address on an OVS bridge holding the underlay NIC ("br-phy",
// OVS's userspace tunnelling setup).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { runCommand, stopProcess, Topology, type Container, type RunResult, type TopologyOptions } from '../../src/lab/topology';

const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export interface OvsInstance {
  ns: string;
  dir: string;
  /** OVS_RUNDIR and friends: what ovs-vsctl, ovs-appctl and tsvtep need to reach this OVS. */
  env: Record<string, string>;
  /** ovs-vsctl against this OVS; throws with its stderr if it fails. */
  vsctl(args: string[]): Promise<string>;
  vsctlResult(args: string[]): Promise<RunResult>;
  /** ovs-appctl to this ovs-vswitchd. */
  appctl(args: string[]): Promise<string>;
  /** Stops ovs-vswitchd, then ovsdb-server (SIGTERM by PID, SIGKILL after 5 s). */
  stop(): Promise<void>;
}

/** Starts ovsdb-server and ovs-vswitchd in namespace ns, everything under dir (created here). */
export async function startOvs(ns: string, dir: string): Promise<OvsInstance> {
  mkdirSync(dir, { recursive: true });
  const env = { OVS_RUNDIR: dir, OVS_DBDIR: dir, OVS_LOGDIR: dir, OVS_SYSCONFDIR: dir };
  const run = (file: string, args: string[], timeoutMs = 20_000): Promise<RunResult> =>
    runCommand('env', [...Object.entries(env).map(([k, v]) => `${k}=${v}`), file, ...args], timeoutMs);
  const ok = async (file: string, args: string[]): Promise<string> => {
    const result = await run(file, args);
    if (result.code !== 0) throw new Error(`${file} ${args.join(' ')} (OVS in ${ns}) exited ${result.code}: ${result.stderr.trim()}`);
    return result.stdout;
  };
  const daemons: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const child of daemons.splice(0).reverse()) await stopProcess(child, 5_000);
  };
  const start = (program: string, args: string[]): ChildProcess => {
    const child = spawn('nsenter', [`--net=/var/run/netns/${ns}`, program, ...args, '--no-chdir', '-vconsole:off', `--log-file=${dir}/${program}.log`, `--pidfile=${dir}/${program}.pid`, `--unixctl=${dir}/${program}.ctl`], {
      stdio: 'ignore',
      env: { ...process.env, ...env },
    });
    daemons.push(child);
    return child;
  };
  try {
    await ok('ovsdb-tool', ['create', `${dir}/conf.db`, SCHEMA]);
    const db = start('ovsdb-server', [`${dir}/conf.db`, `--remote=punix:${dir}/db.sock`]);
    await until(db, async () => (await run('ovs-vsctl', ['--timeout=2', '--no-wait', 'init'])).code === 0, `ovsdb-server in ${ns} did not answer`);
    const vswitchd = start('ovs-vswitchd', [`unix:${dir}/db.sock`]);
    await until(
      vswitchd,
      async () => existsSync(`${dir}/ovs-vswitchd.ctl`) && (await run('ovs-appctl', ['-t', `${dir}/ovs-vswitchd.ctl`, 'version'])).code === 0,
      `ovs-vswitchd in ${ns} did not start`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    ns,
    dir,
    env,
    vsctl: (args) => ok('ovs-vsctl', ['--timeout=20', ...args]),
    vsctlResult: (args) => run('ovs-vsctl', ['--timeout=20', ...args]),
    appctl: (args) => ok('ovs-appctl', ['-t', `${dir}/ovs-vswitchd.ctl`, ...args]),
    stop,
  };
}

async function until(child: ChildProcess, condition: () => Promise<boolean>, what: string, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what}: it exited (${child.exitCode ?? child.signalCode})`);
    if (await condition()) return;
    if (Date.now() > end) throw new Error(`${what} within ${deadlineMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function ip(args: string[]): Promise<void> {
  const result = await runCommand('ip', args, 10_000);
  if (result.code !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
}

/** Adds a bridge with the userspace datapath and brings its own interface up. */
export async function addNetdevBridge(ovs: OvsInstance, bridge: string): Promise<void> {
  await ovs.vsctl(['add-br', bridge, '--', 'set', 'bridge', bridge, 'datapath_type=netdev']);
  await ip(['-n', ovs.ns, 'link', 'set', bridge, 'up']);
}

/**
 * OVS's userspace tunnelling: the host's underlay NIC becomes a port of
 * bridge br-phy, which takes over the NIC's address, so that OVS can route
 * and resolve (ARP) the outer packets of its vxlan ports itself.
 */
export async function moveUnderlayToBridge(ovs: OvsInstance, nic: string, cidr: string, bridge = 'br-phy'): Promise<void> {
  await addNetdevBridge(ovs, bridge);
  await ovs.vsctl(['add-port', bridge, nic]);
  await ip(['-n', ovs.ns, 'addr', 'flush', 'dev', nic]);
  await ip(['-n', ovs.ns, 'addr', 'add', cidr, 'dev', bridge]);
}

/**
 * A "container" on an OVS bridge, as ovs-docker does it: a namespace whose
 * eth0 is a veth whose other end is a port of the bridge. With the userspace
 * datapath, OVS moves the container's frames through AF_PACKET sockets, which
 * leave TCP/UDP checksums that the veth left to "hardware" uncomputed; so the
 * container computes them itself (tx checksum offload off), as OVS's
 * documentation advises for veths on the userspace datapath.
 */
export async function addOvsContainer(
  lab: OvsLab,
  host: number,
  options: { ns: string; bridge: string; port: string; ip: string; prefixLength: number; mac: string; mtu: number; vni: number },
): Promise<Container> {
  const ovs = lab.ovs[host];
  await ip(['netns', 'add', options.ns]);
  lab.namespaces.push(options.ns);
  await ip(['-n', options.ns, 'link', 'set', 'lo', 'up']);
  await ip(['link', 'add', 'eth0', 'netns', options.ns, 'mtu', String(options.mtu), 'address', options.mac, 'type', 'veth', 'peer', 'name', options.port, 'netns', ovs.ns, 'mtu', String(options.mtu)]);
  await ip(['-n', ovs.ns, 'link', 'set', options.port, 'up']);
  await ovs.vsctl(['add-port', options.bridge, options.port]);
  await ip(['-n', options.ns, 'addr', 'add', `${options.ip}/${options.prefixLength}`, 'dev', 'eth0']);
  await ip(['-n', options.ns, 'link', 'set', 'eth0', 'up']);
  const ethtool = await runCommand('ip', ['netns', 'exec', options.ns, 'ethtool', '-K', 'eth0', 'tx', 'off'], 10_000);
  if (ethtool.code !== 0) throw new Error(`ethtool -K eth0 tx off in ${options.ns}: ${ethtool.stderr.trim()}`);
  return { ns: options.ns, host, vni: options.vni, ip: options.ip, ip6: '', mac: options.mac };
}

export interface OvsLab {
  topology: Topology;
  /** One OVS per host, in host order. */
  ovs: OvsInstance[];
  /** Temporary directory of this lab (OVS run directories, config files). */
  dir: string;
  /** Namespaces made here besides the topology's (containers); removed on teardown. */
  namespaces: string[];
}

/**
 * Hosts on one underlay segment (no Linux bridges of our own), an OVS in each,
 * then setup. Built before the enclosing describe block's tests and torn down
 * after them, also when a step fails: processes the topology spawned (tsvtep)
 * first, then the OVS daemons by PID, then namespaces and files.
 */
export function useOvsLab(setup: (lab: OvsLab) => Promise<void>, options: TopologyOptions = {}): () => OvsLab {
  let lab: OvsLab | undefined;
  let topology: Topology | undefined;
  let dir: string | undefined;
  const ovs: OvsInstance[] = [];
  const namespaces: string[] = [];
  beforeAll(async () => {
    topology = await Topology.create({ hosts: 2, vnis: [], ipv6: false, ...options });
    dir = mkdtempSync(path.join(tmpdir(), `tsvtep-ovs-${topology.prefix}-`));
    for (const host of topology.hosts) ovs.push(await startOvs(host.ns, path.join(dir, `h${host.index + 1}`)));
    lab = { topology, ovs, dir, namespaces };
    await setup(lab);
  }, 120_000);
  afterAll(async () => {
    // tsvtep first (it removes its ports from a running OVS), then OVS.
    await topology?.destroy();
    for (const instance of ovs.splice(0).reverse()) await instance.stop();
    for (const ns of namespaces.splice(0)) await runCommand('ip', ['netns', 'del', ns], 10_000);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);
  return () => {
    if (!lab) throw new Error('the Open vSwitch lab was not built (see the beforeAll error)');
    return lab;
  };
}
