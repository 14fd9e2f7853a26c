// Builds the tutorials' multi-host lab out of network namespaces on one
// machine: "hosts" joined by an underlay (one shared segment, or routed
// through a router as in seed 004), each with a bridge per VNI and a
// "container" namespace per bridge. Used by the integration tests, the
// benchmarks and `tsvtep lab`.
//
// Every name starts with the topology's prefix, so leftovers of a crashed run
// can be found and removed (removeByPrefix). Processes started here are
// stopped by the PID we got, never by name.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TopologyOptions {
  /** Name prefix for every namespace; default 'tv' + random hex (unique per run). */
  prefix?: string;
  /** Number of hosts (2 or more). */
  hosts?: number;
  /** Put each host in its own subnet behind a router namespace (seed 004). */
  routed?: boolean;
  /** VNIs: one bridge and one container per VNI on every host. */
  vnis?: number[];
  /** MTU of the underlay links. */
  underlayMtu?: number;
  /** MTU of the containers' interfaces (Docker's default is 1500). */
  containerMtu?: number;
  /** Also give underlay and containers IPv6 addresses. */
  ipv6?: boolean;
}

export interface Container {
  ns: string;
  host: number;
  vni: number;
  ip: string;
  ip6: string;
  mac: string;
}

export interface Host {
  index: number;
  ns: string;
  /** The host's underlay interface, inside its namespace. */
  underlayIf: string;
  underlayIp: string;
  underlayIp6: string;
  /** Bridge name per VNI, inside the host's namespace. */
  bridges: Map<number, string>;
  containers: Container[];
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Container addresses as in the seeds: 172.18.0.11, .12, ... on every VNI. */
export function containerIp(hostIndex: number): string {
  return `172.18.0.${11 + hostIndex}`;
}

export function containerIp6(hostIndex: number): string {
  return `fd18::${11 + hostIndex}`;
}

export class Topology {
  readonly hosts: Host[] = [];
  /** Namespace of the underlay switch or router. */
  readonly coreNs: string;
  private readonly namespaces: string[] = [];
  private readonly processes = new Set<ChildProcess>();

  readonly prefix: string;

  private constructor(readonly options: Required<TopologyOptions>) {
    if (options.hosts < 2) throw new Error('a topology needs at least two hosts');
    this.prefix = options.prefix;
    this.coreNs = `${options.prefix}-core`;
    this.plan();
  }

  /**
   * Builds the topology. `step` wraps each stage (underlay, host, bridge with
   * its container) with a label, so a caller can show progress; by default the
   * stages just run. If building fails, what was built is removed.
   */
  static async create(options: TopologyOptions = {}, step: StepRunner = (_label, fn) => fn()): Promise<Topology> {
    const topology = new Topology(completeOptions(options));
    try {
      await topology.build(step);
    } catch (error) {
      await topology.destroy();
      throw error;
    }
    return topology;
  }

  /**
   * The description of a topology built earlier, by another process, with the
   * same options: names and addresses to run checks against. Creates nothing;
   * its destroy() stops only processes it spawned and deletes no namespace.
   */
  static attach(options: TopologyOptions & { prefix: string }): Topology {
    return new Topology(completeOptions(options));
  }

  /** Runs a command inside a namespace and waits for it (bounded by timeoutMs). */
  async exec(ns: string, command: string[], timeoutMs = 30_000): Promise<RunResult> {
    return runCommand('ip', ['netns', 'exec', ns, ...command], timeoutMs);
  }

  /** Like exec, but throws with the command's stderr if it fails. */
  async execOk(ns: string, command: string[], timeoutMs = 30_000): Promise<string> {
    const result = await this.exec(ns, command, timeoutMs);
    if (result.code !== 0) {
      throw new Error(`${command.join(' ')} in ${ns} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    }
    return result.stdout;
  }

  /** Starts a long-running process in a namespace; destroy() stops it by PID. */
  spawn(ns: string, command: string[]): ChildProcess {
    // `ip netns exec` execs the command, so the PID we get is the command's own.
    const child = spawn('ip', ['netns', 'exec', ns, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.processes.add(child);
    child.once('exit', () => this.processes.delete(child));
    return child;
  }

  container(host: number, vni = this.options.vnis[0]): Container {
    const found = this.hosts[host].containers.find((c) => c.vni === vni);
    if (!found) throw new Error(`no container on host ${host} for VNI ${vni}`);
    return found;
  }

  /** Stops every process started here and deletes every namespace (and with them every link). */
  async destroy(): Promise<void> {
    await Promise.all([...this.processes].map((child) => stopProcess(child, 3_000)));
    for (const ns of this.namespaces.splice(0).reverse()) {
      await runCommand('ip', ['netns', 'del', ns], 10_000);
    }
  }

  private async addNamespace(ns: string): Promise<void> {
    await ip(['netns', 'add', ns]);
    this.namespaces.push(ns);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  /** Names and addresses of every host, bridge and container; nothing is created here. */
  private plan(): void {
    const { hosts, routed, vnis } = this.options;
    for (let i = 0; i < hosts; i++) {
      const host: Host = {
        index: i,
        ns: `${this.prefix}-h${i + 1}`,
        underlayIf: 'eth0',
        underlayIp: routed ? `10.0.${i + 1}.2` : `10.0.1.${41 + i}`,
        underlayIp6: routed ? `fd00:${i + 1}::2` : `fd00:1::${41 + i}`,
        bridges: new Map(),
        containers: [],
      };
      for (const vni of vnis) {
        host.bridges.set(vni, `br${vni}`);
        // Locally administered MACs that say which host and VNI they belong to.
        const mac = `02:00:${hex(i + 1)}:${hex((vni >> 16) & 0xff)}:${hex((vni >> 8) & 0xff)}:${hex(vni & 0xff)}`;
        host.containers.push({ ns: `${this.prefix}-c${i + 1}-${vni}`, host: i, vni, ip: containerIp(i), ip6: containerIp6(i), mac });
      }
      this.hosts.push(host);
    }
  }

  private async build(step: StepRunner): Promise<void> {
    const { routed, underlayMtu, ipv6 } = this.options;
    const label = routed ? `${this.coreNs}: router between the hosts' subnets` : `${this.coreNs}: underlay switch sw (10.0.1.0/24)`;
    await step(label, async () => {
      await this.addNamespace(this.coreNs);
      if (!routed) {
        // One shared underlay segment: a bridge in the core namespace.
        await ip(['-n', this.coreNs, 'link', 'add', 'sw', 'type', 'bridge']);
        await ip(['-n', this.coreNs, 'link', 'set', 'sw', 'mtu', String(underlayMtu), 'up']);
      } else {
        await this.execOk(this.coreNs, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
        await this.execOk(this.coreNs, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
      }
    });
    for (const host of this.hosts) {
      const i = host.index;
      const ns = host.ns;
      await step(`${ns}: underlay eth0 ${host.underlayIp}/24${routed ? ` via ${this.coreNs} (10.0.${i + 1}.1)` : ''}`, async () => {
        await this.addNamespace(ns);
        const coreSide = `p${i + 1}`;
        await ip(['link', 'add', 'eth0', 'netns', ns, 'mtu', String(underlayMtu), 'type', 'veth', 'peer', 'name', coreSide, 'netns', this.coreNs, 'mtu', String(underlayMtu)]);
        await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
        await ip(['-n', this.coreNs, 'link', 'set', coreSide, 'up']);
        if (routed) {
          await ip(['-n', this.coreNs, 'addr', 'add', `10.0.${i + 1}.1/24`, 'dev', coreSide]);
          await ip(['-n', ns, 'addr', 'add', `${host.underlayIp}/24`, 'dev', 'eth0']);
          await ip(['-n', ns, 'route', 'add', 'default', 'via', `10.0.${i + 1}.1`]);
          if (ipv6) {
            await ip(['-n', this.coreNs, 'addr', 'add', `fd00:${i + 1}::1/64`, 'dev', coreSide, 'nodad']);
            await ip(['-n', ns, 'addr', 'add', `${host.underlayIp6}/64`, 'dev', 'eth0', 'nodad']);
            await ip(['-n', ns, '-6', 'route', 'add', 'default', 'via', `fd00:${i + 1}::1`]);
          }
        } else {
          await ip(['-n', this.coreNs, 'link', 'set', coreSide, 'master', 'sw']);
          await ip(['-n', ns, 'addr', 'add', `${host.underlayIp}/24`, 'dev', 'eth0']);
          if (ipv6) await ip(['-n', ns, 'addr', 'add', `${host.underlayIp6}/64`, 'dev', 'eth0', 'nodad']);
        }
      });
      for (const container of host.containers) {
        const bridge = host.bridges.get(container.vni) as string;
        await step(`${ns}: bridge ${bridge}, container ${container.ns} ${container.ip}`, () => this.addBridgeAndContainer(host, bridge, container));
      }
    }
  }

  private async addBridgeAndContainer(host: Host, bridge: string, container: Container): Promise<void> {
    const { containerMtu: mtu, ipv6 } = this.options;
    await ip(['-n', host.ns, 'link', 'add', bridge, 'type', 'bridge']);
    // Forward at once; the bridge's default forward delay would hold frames for seconds.
    await ip(['-n', host.ns, 'link', 'set', bridge, 'type', 'bridge', 'forward_delay', '0']);
    await ip(['-n', host.ns, 'link', 'set', bridge, 'up']);

    const ns = container.ns;
    await this.addNamespace(ns);
    const hostSide = `v${container.vni}`;
    await ip(['link', 'add', 'eth0', 'netns', ns, 'mtu', String(mtu), 'address', container.mac, 'type', 'veth', 'peer', 'name', hostSide, 'netns', host.ns, 'mtu', String(mtu)]);
    await ip(['-n', host.ns, 'link', 'set', hostSide, 'master', bridge, 'up']);
    await ip(['-n', ns, 'addr', 'add', `${container.ip}/16`, 'dev', 'eth0']);
    if (ipv6) await ip(['-n', ns, 'addr', 'add', `${container.ip6}/64`, 'dev', 'eth0', 'nodad']);
    await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
  }
}

/** Runs one labelled stage of building a topology (see Topology.create). */
export type StepRunner = (label: string, fn: () => Promise<void>) => Promise<void>;

function completeOptions(options: TopologyOptions): Required<TopologyOptions> {
  return {
    prefix: options.prefix ?? `tv${randomBytes(3).toString('hex')}`,
    hosts: options.hosts ?? 2,
    routed: options.routed ?? false,
    vnis: options.vnis ?? [100],
    underlayMtu: options.underlayMtu ?? 1500,
    containerMtu: options.containerMtu ?? 1500,
    ipv6: options.ipv6 ?? true,
  };
}

/** Names of the network namespaces (as `ip netns list` shows them) that start with prefix. */
export async function namespacesByPrefix(prefix: string): Promise<string[]> {
  const { stdout } = await runCommand('ip', ['netns', 'list'], 10_000);
  return stdout
    .split('\n')
    .map((line) => line.split(' ')[0])
    .filter((name) => name !== '' && name.startsWith(prefix));
}

/** Deletes every namespace whose name starts with prefix (leftovers of a crash). */
export async function removeByPrefix(prefix: string): Promise<string[]> {
  const names = await namespacesByPrefix(prefix);
  for (const name of names) await runCommand('ip', ['netns', 'del', name], 10_000);
  return names;
}

/** SIGTERM, then SIGKILL after graceMs; resolves with the exit code (null if killed). */
export function stopProcess(child: ChildProcess, graceMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

async function ip(args: string[]): Promise<void> {
  const result = await runCommand('ip', args, 10_000);
  if (result.code !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
}

export async function runCommand(file: string, args: string[], timeoutMs: number): Promise<RunResult> {
  try {
    const { stdout, stderr } = await run(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const err = error as { stdout?: string; stderr?: string; code?: number | string; killed?: boolean };
    const code = typeof err.code === 'number' ? err.code : 1;
    const stderr = `${err.stderr ?? ''}${err.killed ? `\n(timed out after ${timeoutMs} ms)` : ''}`;
    return { stdout: err.stdout ?? '', stderr, code };
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
