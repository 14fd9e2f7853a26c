// The daemon: wires the engine to the native TAPs and UDP socket, and owns
// start-up and shutdown. Start-up either completes or undoes everything it
// did, so a failed start leaves no TAP behind.

import { constants } from 'node:os';
import type { Logger } from 'pino';
import { addressFamily } from './core/address';
import { systemClock, type Clock } from './core/clock';
import { Engine } from './core/engine';
import { Fdb } from './core/fdb';
import { Network } from './core/network';
import { RemoteTable } from './core/remotes';
import { VXLAN_HEADER_LEN } from './core/vxlan';
import { defaultTapName, type DaemonConfig, type NetworkConfig } from './config';
import { attachToBridge, bridgeKind, deviceAddress, getLink, LinkError, routeTo } from './io/link';
import { isErrnoError, native } from './io/native';
import { TapDevice } from './io/tap';
import { UdpSocket } from './io/udp';

/** A failure to start that the user can act on; the message says how. */
export class StartupError extends Error {}

/** Outer IPv4 + UDP + VXLAN + inner Ethernet headers; IPv6 adds 20. */
const OVERHEAD_IPV4 = 20 + 8 + VXLAN_HEADER_LEN + 14;
const OVERHEAD_IPV6 = 40 + 8 + VXLAN_HEADER_LEN + 14;
/** An inner 802.1Q tag may ride on top of the TAP's MTU. */
const VLAN_TAG = 4;
const BATCH_SIZE = 64;
const HOUSEKEEPING_MS = 5_000;

export interface NetworkInfo {
  vni: number;
  bridge: string;
  tap: string;
  tapMtu: number;
  /** Largest inner MTU that crosses the underlay without fragmentation. */
  overlayMtu: number;
  peers: string[];
}

interface RunningNetwork {
  info: NetworkInfo;
  network: Network;
  tap: TapDevice;
}

export class Daemon {
  private readonly running: RunningNetwork[] = [];
  private socket: UdpSocket | undefined;
  private housekeeping: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly engine: Engine;
  readonly remotes: RemoteTable;

  private constructor(
    readonly config: DaemonConfig,
    private readonly log: Logger,
    socket: UdpSocket,
    maxFrameSize: number,
    clock: Clock,
  ) {
    this.socket = socket;
    this.remotes = new RemoteTable(config.port);
    this.engine = new Engine({
      socket,
      remotes: this.remotes,
      clock,
      batchSize: BATCH_SIZE,
      maxFrameSize,
      learnRemotes: config.learnRemotes,
      onIoError: (what, errno, vni) =>
        log.warn({ vni, errno: errnoName(errno) }, `${what === 'tap_write' ? 'TAP write' : 'UDP send'} failed: ${errnoName(errno)} (counted as drops; logged once)`),
    });
  }

  /** Starts every configured network, or throws StartupError having undone everything. */
  static async start(config: DaemonConfig, log: Logger, clock: Clock = systemClock): Promise<Daemon> {
    loadNative();
    const bridgeMtus: number[] = [];
    for (const network of config.networks) bridgeMtus.push(await checkBridge(network.bridge));
    const tapMtus = config.networks.map((network, i) => network.mtu ?? bridgeMtus[i]);
    const maxFrameSize = Math.max(...tapMtus) + 14 + VLAN_TAG;

    const bindAddress = config.local ?? (config.dev ? await underlayAddress(config.dev) : undefined);
    const socket = openSocket(bindAddress, config);
    const daemon = new Daemon(config, log, socket, maxFrameSize, clock);
    try {
      for (let i = 0; i < config.networks.length; i++) {
        await daemon.startNetwork(config.networks[i], tapMtus[i], clock);
      }
    } catch (error) {
      daemon.stop();
      throw error;
    }
    socket.watch((errno) => daemon.onSocketReadable(errno));
    daemon.housekeeping = setInterval(() => daemon.engine.housekeep(), HOUSEKEEPING_MS);
    daemon.housekeeping.unref();
    const local = socket.localAddress();
    log.info({ address: local.address, port: local.port }, `listening on UDP ${formatEndpoint(local.address, local.port)}`);
    return daemon;
  }

  networks(): NetworkInfo[] {
    return this.running.map((r) => r.info);
  }

  network(vni: number): Network | undefined {
    return this.engine.network(vni);
  }

  localPort(): number {
    return this.socket?.localAddress().port ?? this.config.port;
  }

  /** Stops forwarding and closes every descriptor; the kernel removes the TAPs. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.housekeeping) clearInterval(this.housekeeping);
    for (const r of this.running.splice(0)) {
      this.engine.removeNetwork(r.info.vni);
      r.tap.close();
    }
    this.socket?.close();
    this.socket = undefined;
  }

  private async startNetwork(config: NetworkConfig, tapMtu: number, clock: Clock): Promise<void> {
    const tap = openTap(config.tap ?? defaultTapName(config.vni));
    try {
      await attachToBridge(tap.name, config.bridge, tapMtu);
    } catch (error) {
      tap.close();
      throw new StartupError(`cannot attach ${tap.name} to bridge ${config.bridge}: ${(error as Error).message}`);
    }
    const fdb = new Fdb({ ageingMs: config.ageingSeconds * 1000, maxEntries: config.maxAddresses, clock });
    const network = new Network(config.vni, fdb, tap);
    for (const peer of config.peers) network.addPeer(this.remotes.add(peer).id);
    const overlayMtu = await overlayMtuFor(config.peers);
    network.overlayMtu = overlayMtu;
    this.engine.addNetwork(network);
    const info: NetworkInfo = {
      vni: config.vni,
      bridge: config.bridge,
      tap: tap.name,
      tapMtu,
      overlayMtu,
      peers: network.peers.map((id) => this.remotes.get(id)?.address ?? '?'),
    };
    this.running.push({ info, network, tap });
    tap.watch((errno) => this.onTapReadable(network, tap, errno));
    this.log.info(
      { vni: info.vni, tap: info.tap, bridge: info.bridge, peers: info.peers, tapMtu, overlayMtu },
      `VNI ${info.vni}: ${info.tap} on bridge ${info.bridge}, ${info.peers.length} peer(s): ${info.peers.join(', ')}`,
    );
    if (tapMtu > overlayMtu) {
      this.log.warn(
        { vni: info.vni, tapMtu, overlayMtu },
        `VNI ${info.vni}: frames over ${overlayMtu} bytes are fragmented on the underlay; an MTU of ${overlayMtu} on the containers avoids that`,
      );
    }
  }

  private onTapReadable(network: Network, tap: TapDevice, errno: number): void {
    if (errno !== 0) {
      this.log.error({ vni: network.vni, errno: errnoName(errno) }, `polling ${tap.name} failed`);
      return;
    }
    try {
      this.engine.drainTap(network);
    } catch (error) {
      this.failIo(`reading ${tap.name}`, error);
    }
  }

  private onSocketReadable(errno: number): void {
    if (errno !== 0) {
      this.log.error({ errno: errnoName(errno) }, 'polling the UDP socket failed');
      return;
    }
    try {
      this.engine.drainSocket();
    } catch (error) {
      this.failIo('receiving from the UDP socket', error);
    }
  }

  /** A read error that will not go away: say so once and stop, rather than spin. */
  private failIo(what: string, error: unknown): void {
    const message = isErrnoError(error) ? error.code : (error as Error).message;
    this.log.fatal({ err: error }, `${what} failed (${message}); shutting down`);
    this.stop();
    process.exitCode = 1;
  }
}

function loadNative(): void {
  try {
    native();
  } catch (error) {
    throw new StartupError((error as Error).message);
  }
}

async function checkBridge(name: string): Promise<number> {
  try {
    const kind = await bridgeKind(name);
    if (kind === 'openvswitch') {
      throw new StartupError(`${name} is an Open vSwitch bridge; only Linux bridges are supported so far`);
    }
    const link = await getLink(name);
    return link?.mtu ?? 1500;
  } catch (error) {
    if (error instanceof LinkError) throw new StartupError(error.message);
    throw error;
  }
}

async function underlayAddress(dev: string): Promise<string> {
  try {
    return await deviceAddress(dev);
  } catch (error) {
    if (error instanceof LinkError) throw new StartupError(error.message);
    throw error;
  }
}

/** The inner MTU that fits the underlay towards every peer without fragmenting. */
async function overlayMtuFor(peers: string[]): Promise<number> {
  let smallest = Infinity;
  for (const peer of peers) {
    const overhead = addressFamily(peer) === 4 ? OVERHEAD_IPV4 : OVERHEAD_IPV6;
    try {
      const route = await routeTo(peer);
      smallest = Math.min(smallest, route.mtu - overhead);
    } catch {
      smallest = Math.min(smallest, 1500 - overhead);
    }
  }
  return smallest;
}

function openSocket(bindAddress: string | undefined, config: DaemonConfig): UdpSocket {
  const address = bindAddress ?? '::';
  try {
    return UdpSocket.bind(address, config.port, config.dontFragment);
  } catch (error) {
    if (isErrnoError(error) && error.code === 'EAFNOSUPPORT' && bindAddress === undefined) {
      return openSocket('0.0.0.0', config);
    }
    if (isErrnoError(error) && error.code === 'EADDRINUSE') {
      throw new StartupError(
        `UDP port ${config.port} is in use on ${address} (another tsvtep or a kernel vxlan device with dstport ${config.port}? pick another with --port)`,
      );
    }
    if (isErrnoError(error) && error.code === 'EADDRNOTAVAIL') {
      throw new StartupError(`address ${address} is not on this host (ip addr lists local addresses)`);
    }
    if (isErrnoError(error) && error.code === 'EACCES') {
      throw new StartupError(`not allowed to bind UDP port ${config.port} (run as root)`);
    }
    throw error;
  }
}

function openTap(name: string): TapDevice {
  try {
    return TapDevice.open(name);
  } catch (error) {
    if (!isErrnoError(error)) throw error;
    switch (error.code) {
      case 'EPERM':
      case 'EACCES':
        throw new StartupError(`not allowed to create TAP ${name} (run as root or with CAP_NET_ADMIN)`);
      case 'ENOENT':
      case 'ENODEV':
        throw new StartupError('/dev/net/tun is missing (modprobe tun, or give the container /dev/net/tun)');
      case 'EBUSY':
        throw new StartupError(`TAP ${name} is in use by another process (pick another name with --tap)`);
      case 'EINVAL':
        throw new StartupError(`${name} exists and is not a TAP (pick another name with --tap)`);
      default:
        throw new StartupError(`cannot create TAP ${name}: ${error.message}`);
    }
  }
}

function formatEndpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** 'EPERM' for 1, and so on, for log lines. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}
