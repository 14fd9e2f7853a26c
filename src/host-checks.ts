// Whether this host can run tsvtep, one check at a time, each with what to do
// when it fails. `tsvtep doctor` prints them; `tsvtep lab up` runs the ones a
// lab needs before it builds anything. Checks only look: the one that opens
// a TAP (offloads) opens a non-persistent one that vanishes when closed, the
// UDP ones bind and close sockets.

import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { release } from 'node:os';
import { promisify } from 'node:util';
import { addressRecord } from './core/address';
import { VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6 } from './core/protocol';
import { dockerNetworkBridge, dockerSocketPath } from './io/docker';
import { bridgeKind, routeTo } from './io/link';
import { native, type NativeAddon } from './io/native';
import { ovsBridgeExists, ovsDatabaseSocket } from './io/ovs';

const run = promisify(execFile);

/** pass; fail (tsvtep cannot run as asked); warn (it runs, slower or without a feature); skip (could not be checked). */
export type CheckStatus = 'pass' | 'fail' | 'warn' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** What was found, and for fail and warn what to do. */
  detail: string;
}

export interface HostCheckOptions {
  /** Bridges to attach to (Linux or Open vSwitch). */
  bridges: string[];
  /** Docker networks whose bridges to attach to. */
  dockerNetworks: string[];
  /** Check the Docker Engine even without a network named. */
  docker: boolean;
  /** Check Open vSwitch even without an OVS bridge named. */
  ovs: boolean;
  /** UDP port to listen on; undefined: not checked. */
  port?: number;
  /** Peers whose route MTU to report. */
  peers: string[];
}

const CAP_NET_ADMIN = 12;
/** UDP_SEGMENT (GSO) came with Linux 4.18, UDP_GRO with 5.0. */
const GSO_KERNEL: [number, number] = [4, 18];

const pass = (name: string, detail: string): CheckResult => ({ name, status: 'pass', detail });
const fail = (name: string, detail: string): CheckResult => ({ name, status: 'fail', detail });
const warn = (name: string, detail: string): CheckResult => ({ name, status: 'warn', detail });
const skip = (name: string, detail: string): CheckResult => ({ name, status: 'skip', detail });

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}

/** Whether this process has CAP_NET_ADMIN in its effective set (root normally has). */
export function hasNetAdmin(status = readFileSync('/proc/self/status', 'utf8')): boolean {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return hex !== undefined && (BigInt(`0x${hex}`) & (1n << BigInt(CAP_NET_ADMIN))) !== 0n;
}

export function checkPrivileges(): CheckResult {
  const name = 'root or CAP_NET_ADMIN';
  const uid = process.getuid?.() ?? -1;
  const netAdmin = hasNetAdmin();
  if (netAdmin) return pass(name, uid === 0 ? 'running as root' : `uid ${uid} with CAP_NET_ADMIN`);
  if (uid === 0) return fail(name, 'root, but without CAP_NET_ADMIN (a container? give it --cap-add NET_ADMIN)');
  return fail(name, `uid ${uid}, no CAP_NET_ADMIN: run as root (sudo), or setcap cap_net_admin+ep on node`);
}

export function checkTunDevice(): CheckResult {
  const name = '/dev/net/tun';
  try {
    // stat, not access(): it sees what this process's capabilities let it see.
    if (!statSync('/dev/net/tun').isCharacterDevice()) return fail(name, 'is not a character device: recreate it (mknod /dev/net/tun c 10 200)');
    return pass(name, 'present');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return fail(name, 'missing: load the tun module (modprobe tun); in a container pass --device /dev/net/tun');
    return fail(name, `cannot be reached (${code ?? firstLine(error)}): check the permissions of /dev and /dev/net`);
  }
}

export async function checkIpCommand(): Promise<CheckResult> {
  const name = 'ip (iproute2)';
  try {
    const { stdout } = await run('ip', ['-V'], { timeout: 5_000 });
    const version = /iproute2[-\w.]*/.exec(stdout)?.[0] ?? stdout.trim();
    const json = await run('ip', ['-j', 'link', 'show', 'dev', 'lo'], { timeout: 5_000 }).then(
      () => true,
      () => false,
    );
    if (!json) return fail(name, `${version} cannot print JSON (ip -j): install a newer iproute2 (4.14 or later)`);
    return pass(name, version);
  } catch {
    return fail(name, 'the ip command is missing: install iproute2 (apt-get install iproute2)');
  }
}

/** The addon, or the one line saying why it does not load. */
function loadAddon(): NativeAddon | string {
  try {
    return native();
  } catch (error) {
    return firstLine(error);
  }
}

export function checkAddon(): CheckResult {
  const addon = loadAddon();
  if (typeof addon === 'string') {
    return fail('native addon', `${addon}: reinstall tsvtep, or build it (npm rebuild; needs python3, make and g++)`);
  }
  return pass('native addon', 'loads');
}

function kernelAtLeast(major: number, minor: number, version = release()): boolean {
  const [a, b] = version.split(/[.-]/).map(Number);
  return a > major || (a === major && b >= minor);
}

/** Sends one UDP GSO train (3 segments) to itself on loopback: does the kernel take it? */
function udpGsoAccepted(addon: NativeAddon): string | undefined {
  const fd = addon.udpOpen(addressRecord('127.0.0.1', 0), false, 1 << 16, 1 << 16, false);
  try {
    const self = Buffer.alloc(20);
    addon.udpLocalRecord(fd, self);
    const results = new Int32Array(1);
    const sent = addon.sendBatch(fd, 4, Buffer.alloc(300), Uint32Array.of(0), Uint32Array.of(300), self, results, Uint32Array.of(100), 0, 1);
    return sent === 1 && results[0] === 0 ? undefined : `errno ${results[0]}`;
  } catch (error) {
    return firstLine(error);
  } finally {
    addon.closeFd(fd);
  }
}

/** UDP GSO and GRO on the underlay socket: without them tsvtep sends and receives datagram by datagram. */
export function checkUdpOffloads(): CheckResult[] {
  const addon = loadAddon();
  if (typeof addon === 'string') return [skip('UDP GSO', 'needs the native addon'), skip('UDP GRO', 'needs the native addon')];
  const results: CheckResult[] = [];
  const gsoRefused = kernelAtLeast(...GSO_KERNEL) ? udpGsoAccepted(addon) : `Linux ${release()} has none (4.18 or later)`;
  results.push(
    gsoRefused === undefined
      ? pass('UDP GSO', 'the kernel takes a train of datagrams in one send')
      : warn('UDP GSO', `refused (${gsoRefused}): tsvtep sends datagram by datagram, slower; a kernel 4.18 or later has it`),
  );
  let groRefused: string | undefined;
  try {
    const fd = addon.udpOpen(addressRecord('127.0.0.1', 0), false, 1 << 16, 1 << 16, false);
    try {
      addon.udpEnableGro(fd);
    } finally {
      addon.closeFd(fd);
    }
  } catch (error) {
    groRefused = firstLine(error);
  }
  results.push(
    groRefused === undefined
      ? pass('UDP GRO', 'the kernel hands over runs of datagrams at once')
      : warn('UDP GRO', `refused (${groRefused}): tsvtep receives datagram by datagram, slower; a kernel 5.0 or later has it`),
  );
  return results;
}

/** TSO and checksum offload on a TAP (a temporary one, gone when closed). Needs the privileges to open a TAP. */
export function checkTapOffloads(): CheckResult {
  const name = 'TAP offloads';
  const addon = loadAddon();
  if (typeof addon === 'string') return skip(name, 'needs the native addon');
  if (!hasNetAdmin() || checkTunDevice().status !== 'pass') return skip(name, 'needs CAP_NET_ADMIN and /dev/net/tun to open a test TAP');
  let fd: number;
  try {
    fd = addon.tapOpen(`tsvdoctor${process.pid % 100_000}`, true).fd;
  } catch (error) {
    return fail(name, `cannot open a test TAP: ${firstLine(error)}`);
  }
  try {
    addon.tapSetOffload(fd, addon.TUN_F_CSUM | addon.TUN_F_TSO4 | addon.TUN_F_TSO6 | addon.TUN_F_TSO_ECN);
    return pass(name, 'TSO (IPv4, IPv6) and checksum offload on a test TAP');
  } catch (error) {
    return warn(name, `refused (${firstLine(error)}): tsvtep moves frame by frame, slower (--no-offload says so up front)`);
  } finally {
    addon.closeFd(fd);
  }
}

function bindUdp(type: 'udp4' | 'udp6', port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket({ type, ipv6Only: type === 'udp6' });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.close();
      resolve(error.code ?? error.message);
    });
    socket.bind(port, type === 'udp4' ? '0.0.0.0' : '::', () => socket.close(() => resolve(undefined)));
  });
}

export async function checkUdpPort(port: number): Promise<CheckResult> {
  const name = `UDP port ${port}`;
  const v4 = await bindUdp('udp4', port);
  if (v4 === 'EADDRINUSE') {
    return fail(name, 'in use (another tsvtep, or a kernel vxlan device: ip -d link show type vxlan): stop it, or pick another --port');
  }
  if (v4 !== undefined) return fail(name, `cannot bind it: ${v4}`);
  const v6 = await bindUdp('udp6', port);
  if (v6 === 'EADDRINUSE') return fail(name, 'in use over IPv6: stop what listens on it (ss -ulpn), or pick another --port');
  if (v6 === 'EADDRNOTAVAIL' || v6 === 'EAFNOSUPPORT') return pass(name, 'free (IPv4; no IPv6 on this host)');
  if (v6 !== undefined) return fail(name, `cannot bind it over IPv6: ${v6}`);
  return pass(name, 'free (IPv4 and IPv6)');
}

export async function checkBridge(bridge: string): Promise<CheckResult> {
  const name = `bridge ${bridge}`;
  try {
    const kind = await bridgeKind(bridge);
    return pass(name, kind === 'linux' ? 'a Linux bridge' : 'an Open vSwitch bridge');
  } catch (error) {
    return fail(name, firstLine(error));
  }
}

export async function checkDockerNetwork(network: string): Promise<CheckResult[]> {
  const name = `Docker network ${network}`;
  let bridge: string;
  try {
    bridge = await dockerNetworkBridge(network);
  } catch (error) {
    return [fail(name, firstLine(error))];
  }
  return [pass(name, `bridge ${bridge}`), await checkBridge(bridge)];
}

function dockerPing(socketPath: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', headers: { Host: 'docker' } }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? undefined : `answered ${res.statusCode}`);
    });
    req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end();
  });
}

export async function checkDocker(): Promise<CheckResult> {
  const name = 'Docker Engine';
  let socketPath: string;
  try {
    socketPath = dockerSocketPath();
  } catch (error) {
    return fail(name, firstLine(error));
  }
  const problem = await dockerPing(socketPath);
  if (problem === undefined) return pass(name, `answers on ${socketPath}`);
  return fail(name, `nothing answers on ${socketPath} (${problem}): start it (systemctl start docker), or set DOCKER_HOST=unix://…`);
}

export async function checkOvs(): Promise<CheckResult> {
  const name = 'Open vSwitch';
  // br-exists of a name no bridge has: false if OVS answers, undefined if its database does not.
  const answers = await ovsBridgeExists('tsvtep-doctor');
  if (answers === false) {
    const installed = await run('ovs-vsctl', ['--version'], { timeout: 5_000 }).then(
      () => true,
      () => false,
    );
    if (!installed) return fail(name, 'ovs-vsctl is missing: install openvswitch-switch');
    return pass(name, `its database answers at ${ovsDatabaseSocket()}`);
  }
  return fail(name, `its database does not answer at ${ovsDatabaseSocket()}: start it (systemctl start openvswitch-switch); OVS_RUNDIR selects its run directory`);
}

export async function checkPeerRoute(peer: string): Promise<CheckResult> {
  const name = `route to ${peer}`;
  try {
    const route = await routeTo(peer);
    const overhead = peer.includes(':') ? VXLAN_OVERHEAD_IPV6 : VXLAN_OVERHEAD_IPV4;
    const overlay = route.mtu - overhead;
    const detail = `via ${route.dev}, MTU ${route.mtu}: overlay MTU ${overlay}`;
    if (overlay < 1280) return warn(name, `${detail}, below IPv6's minimum 1280: raise the underlay MTU, or expect fragments`);
    return pass(name, `${detail}${overlay < 1500 ? ' (containers need MTU ≤ this, or tsvtep answers "too big")' : ''}`);
  } catch (error) {
    const message = firstLine(error);
    if (/unreachable/i.test(message)) return fail(name, `no route to ${peer} (ip route shows the routing table): add one, or check the address`);
    return fail(name, message);
  }
}

/** What the daemon needs whatever it is asked to do. */
export async function baseChecks(): Promise<CheckResult[]> {
  return [checkPrivileges(), checkTunDevice(), await checkIpCommand(), checkAddon()];
}

/** Every check for the daemon as options describe it, in the order doctor prints them. */
export async function hostChecks(options: HostCheckOptions): Promise<CheckResult[]> {
  const results = await baseChecks();
  results.push(...checkUdpOffloads(), checkTapOffloads());
  if (options.port !== undefined) results.push(await checkUdpPort(options.port));
  const asksDocker = options.docker || options.dockerNetworks.length > 0;
  if (asksDocker) results.push(await checkDocker());
  if (options.ovs) results.push(await checkOvs());
  for (const bridge of options.bridges) results.push(await checkBridge(bridge));
  for (const network of options.dockerNetworks) results.push(...(await checkDockerNetwork(network)));
  for (const peer of options.peers) results.push(await checkPeerRoute(peer));
  return results;
}

export function failures(results: CheckResult[]): CheckResult[] {
  return results.filter((r) => r.status === 'fail');
}
