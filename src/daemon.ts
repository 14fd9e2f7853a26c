// The daemon: wires the engine to the native TAPs and UDP socket, and owns
// start-up, runtime changes (reload, control interface) and shutdown.
// Start-up either completes or undoes everything it did, so a failed start
// leaves no TAP behind.

import { constants, networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { addressFamily, canonicalAddress } from './core/address';
import { systemClock, type Clock } from './core/clock';
import { Engine } from './core/engine';
import { formatMac, parseMac } from './core/ethernet';
import { Fdb } from './core/fdb';
import { Network } from './core/network';
import { TokenBucket } from './core/rate-limit';
import { RemoteTable } from './core/remotes';
import { VXLAN_HEADER_LEN } from './core/vxlan';
import { defaultTapName, type DaemonConfig, type NetworkConfig } from './config';
import { DockerError, dockerNetworkBridge } from './io/docker';
import {
  attachToBridge,
  bridgeKind,
  bridgePortMtus,
  detachFromBridge,
  detachFromBridgeSync,
  deviceAddress,
  getLink,
  LinkError,
  routeTo,
  type BridgeKind,
} from './io/link';
import { isErrnoError, native } from './io/native';
import { OvsError, ovsPortMtus, ovsUserspaceDatapath } from './io/ovs';
import { nativeSegmenter } from './io/segmenter';
import { TapDevice } from './io/tap';
import { SourcePortPool } from './io/source-ports';
import { UdpSocket } from './io/udp';
import { LinkWatch, type WatchedNetwork } from './io/watch';

/** A failure to start that the user can act on; the message says how. */
export class StartupError extends Error {}

/** A runtime change that cannot be made (unknown VNI, bad address, ...). */
export class ChangeError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 404 | 409 = 400,
  ) {
    super(message);
  }
}

/** Outer IPv4 + UDP + VXLAN + inner Ethernet headers; IPv6 adds 20. */
const OVERHEAD_IPV4 = 20 + 8 + VXLAN_HEADER_LEN + 14;
const OVERHEAD_IPV6 = 40 + 8 + VXLAN_HEADER_LEN + 14;
/** An inner 802.1Q tag may ride on top of the TAP's MTU. */
const VLAN_TAG = 4;
const BATCH_SIZE = 64;
const HOUSEKEEPING_MS = 5_000;
/** Frame slots are sized once, at start-up; networks added later must fit. */
const MIN_FRAME_SIZE = 9000 + 14 + VLAN_TAG;

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
  /** How the TAP was attached, so that it is detached the same way. */
  bridgeKind: BridgeKind;
  config: NetworkConfig;
  info: NetworkInfo;
  network: Network;
  tap: TapDevice;
}

export class Daemon {
  private readonly running = new Map<number, RunningNetwork>();
  private socket: UdpSocket | undefined;
  /** The sockets datagrams leave from, when they are not the main socket. */
  private senders: SourcePortPool | undefined;
  private housekeeping: NodeJS.Timeout | undefined;
  /** Checks TAPs, bridges and failing I/O every few seconds (see io/watch.ts). */
  private linkWatch: LinkWatch | undefined;
  private stopped = false;
  /** The configuration as last applied from the command line or file. */
  private applied: DaemonConfig;
  readonly engine: Engine;
  readonly remotes: RemoteTable;
  /** Called after an I/O failure stopped the daemon; the CLI closes what else it runs and exits 1. */
  onFatal: () => void = () => {
    process.exitCode = 1;
  };

  private constructor(
    config: DaemonConfig,
    private readonly log: Logger,
    socket: UdpSocket,
    senders: SourcePortPool | undefined,
    private readonly maxFrameSize: number,
    private readonly clock: Clock,
  ) {
    this.applied = { ...config, networks: [] };
    this.socket = socket;
    this.senders = senders;
    this.remotes = new RemoteTable(config.port);
    const groRefused = config.offload ? socket.enableGro() : 'offloads off';
    if (config.offload && groRefused) log.warn(`UDP GRO refused (${groRefused}): datagrams come one by one`);
    this.engine = new Engine({
      socket: senders ?? socket,
      remotes: this.remotes,
      clock,
      batchSize: BATCH_SIZE,
      maxFrameSize,
      learnRemotes: config.learnRemotes,
      dontFragment: config.dontFragment,
      segmenter: config.offload ? nativeSegmenter() : undefined,
      socketGro: groRefused === undefined,
      onGsoRefused: (errno) => log.warn({ errno: errnoName(errno) }, `UDP GSO refused (${errnoName(errno)}): sending segment by segment from now on`),
      onPathMtu: (remote, mtu) => log.info({ peer: remote, mtu }, `path to ${remote} carries inner packets of up to ${mtu} bytes`),
      onIoError: (what, errno, vni) =>
        log.warn(
          { vni, errno: errnoName(errno) },
          `${what === 'tap_write' ? 'TAP write' : 'UDP send'} failed: ${errnoName(errno)} (counted as drops; logged once)`,
        ),
    });
  }

  /** Starts every configured network, or throws StartupError having undone everything. */
  static async start(config: DaemonConfig, log: Logger, clock: Clock = systemClock): Promise<Daemon> {
    loadNative();
    const tapMtus: number[] = [];
    for (const network of config.networks) tapMtus.push((await checkBridge(await bridgeOf(network))).mtu);
    const maxFrameSize = Math.max(MIN_FRAME_SIZE, ...tapMtus.map((mtu) => mtu + 14 + VLAN_TAG));

    const bindAddress = config.local ?? (config.dev ? await underlayAddress(config.dev) : undefined);
    const socket = openSocket(bindAddress, config);
    let senders: SourcePortPool | undefined;
    try {
      senders = config.sourcePorts > 1 ? SourcePortPool.open(socket, socket.localAddress().address, config.sourcePorts, config.dontFragment) : undefined;
    } catch (error) {
      socket.close();
      throw new StartupError(`cannot open the sockets to send from: ${(error as Error).message} (--source-ports 1 sends from port ${config.port})`);
    }
    const daemon = new Daemon(config, log, socket, senders, maxFrameSize, clock);
    try {
      for (const network of config.networks) await daemon.addNetwork(network);
    } catch (error) {
      daemon.stop();
      throw error;
    }
    socket.watch((errno) => daemon.onSocketReadable(errno));
    daemon.housekeeping = setInterval(() => daemon.engine.housekeep(), HOUSEKEEPING_MS);
    daemon.housekeeping.unref();
    daemon.startLinkWatch();
    const local = socket.localAddress();
    const sourcePorts = senders ? senders.sourcePorts() : [local.port];
    log.info(
      { address: local.address, port: local.port, sourcePorts },
      `listening on UDP ${formatEndpoint(local.address, local.port)}; sending from port${sourcePorts.length > 1 ? 's' : ''} ${sourcePorts.join(', ')}${senders ? ', one per inner flow' : ''}`,
    );
    return daemon;
  }

  networks(): NetworkInfo[] {
    return [...this.running.values()].map((r) => ({ ...r.info, peers: this.peerAddresses(r.network) }));
  }

  network(vni: number): Network | undefined {
    return this.engine.network(vni);
  }

  localPort(): number {
    return this.socket?.localAddress().port ?? this.applied.port;
  }

  isUp(): boolean {
    return !this.stopped && this.socket !== undefined;
  }

  // ------------------------------------------------------------ runtime changes

  /** Creates the network's TAP, attaches it to its bridge and starts forwarding. */
  async addNetwork(config: NetworkConfig): Promise<void> {
    if (this.running.has(config.vni)) throw new ChangeError(`VNI ${config.vni} is already running`, 409);
    for (const peer of config.peers) refuseOwnAddress(config.vni, peer, StartupError);
    // Not the overlay MTU: frames up to what the bridge's ports send must reach
    // us, to be answered or fragmented, rather than be dropped by the bridge.
    const bridge = await bridgeOf(config);
    const { kind, mtu: tapMtu, offload } = await checkBridge(bridge);
    if (tapMtu + 14 + VLAN_TAG > this.maxFrameSize) {
      throw new StartupError(`VNI ${config.vni}: MTU ${tapMtu} is larger than this daemon can carry (restart it)`);
    }
    const tap = openTap(config.tap ?? defaultTapName(config.vni), this.applied.offload && offload);
    if (tap.offloadError) this.log.warn({ vni: config.vni }, `TAP offloads refused (${tap.offloadError}): frames come one by one`);
    try {
      await attachToBridge(tap.name, bridge, tapMtu, kind);
    } catch (error) {
      tap.close();
      throw new StartupError(`cannot attach ${tap.name} to bridge ${bridge}: ${(error as Error).message}`);
    }
    const fdb = new Fdb({ ageingMs: config.ageingSeconds * 1000, maxEntries: config.maxAddresses, clock: this.clock });
    const network = new Network(config.vni, fdb, tap);
    network.floodLimiter = floodLimiter(config, this.clock);
    for (const peer of config.peers) network.addPeer(this.remotes.add(peer).id);
    for (const entry of config.static) this.putStatic(network, entry.mac, entry.remote);
    network.overlayMtu = config.mtu ?? (await overlayMtuFor(config.peers));
    this.engine.addNetwork(network);
    const info: NetworkInfo = { vni: config.vni, bridge, tap: tap.name, tapMtu, overlayMtu: network.overlayMtu, peers: [] };
    this.running.set(config.vni, { config, info, network, tap, bridgeKind: kind });
    this.applied = { ...this.applied, networks: [...this.applied.networks.filter((n) => n.vni !== config.vni), config] };
    tap.watch((errno) => this.onTapReadable(network, tap, errno));

    const peers = this.peerAddresses(network);
    this.log.info(
      { vni: config.vni, tap: tap.name, bridge, bridgeKind: kind, dockerNetwork: config.dockerNetwork, peers, tapMtu, overlayMtu: network.overlayMtu, tapOffload: tap.vnetHeader },
      `VNI ${config.vni}: ${tap.name} on ${kind === 'openvswitch' ? 'Open vSwitch ' : ''}bridge ${bridge}${config.dockerNetwork ? ` (Docker network ${config.dockerNetwork})` : ''}, ${peers.length} peer(s): ${peers.join(', ')}`,
    );
    if (tapMtu > network.overlayMtu) {
      this.log.info(
        { vni: config.vni, tapMtu, overlayMtu: network.overlayMtu },
        `VNI ${config.vni}: overlay MTU ${network.overlayMtu}: bigger IPv4 packets with DF and IPv6 get ICMP "too big", other IPv4 is fragmented (an MTU of ${network.overlayMtu} on the containers avoids both)`,
      );
    }
  }

  /** Stops forwarding for a VNI and removes its TAP. */
  removeNetwork(vni: number): void {
    const running = this.requireNetwork(vni);
    this.running.delete(vni);
    this.engine.removeNetwork(vni);
    running.tap.close();
    detachFromBridge(running.tap.name, running.info.bridge, running.bridgeKind).catch((error: unknown) =>
      this.log.warn({ vni, err: (error as Error).message }, `VNI ${vni}: ${(error as Error).message}`),
    );
    this.applied = { ...this.applied, networks: this.applied.networks.filter((n) => n.vni !== vni) };
    this.pruneRemotes();
    this.log.info({ vni }, `VNI ${vni}: removed (${running.tap.name} deleted)`);
  }

  addPeer(vni: number, address: string): boolean {
    const { network } = this.requireNetwork(vni);
    refuseOwnAddress(vni, address, ChangeError);
    const remote = this.remotes.add(checkAddress(address));
    if (network.isPeer(remote.id)) return false;
    network.addPeer(remote.id);
    this.refreshOverlayMtu(vni);
    this.log.info({ vni, peer: remote.address }, `VNI ${vni}: peer ${remote.address} added`);
    return true;
  }

  removePeer(vni: number, address: string): boolean {
    const { network } = this.requireNetwork(vni);
    const id = this.remoteId(address);
    if (id < 0 || !network.isPeer(id)) return false;
    network.removePeer(id);
    this.pruneRemotes();
    this.refreshOverlayMtu(vni);
    this.log.info({ vni, peer: canonicalAddress(address) }, `VNI ${vni}: peer ${canonicalAddress(address)} removed`);
    return true;
  }

  /** Adds or replaces a static FDB entry; the remote must be a peer of the VNI. */
  addStatic(vni: number, mac: string, remoteAddress: string): void {
    const { network } = this.requireNetwork(vni);
    this.putStatic(network, mac, remoteAddress);
    this.log.info({ vni, mac, remote: remoteAddress }, `VNI ${vni}: static entry ${mac} -> ${remoteAddress}`);
  }

  removeStatic(vni: number, mac: string): boolean {
    const { network } = this.requireNetwork(vni);
    const parsed = parseMac(mac);
    if (!parsed) throw new ChangeError(`${mac} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
    return network.fdb.remove(parsed.high, parsed.low);
  }

  /**
   * Applies a new configuration: the difference between it and the one last
   * applied. Networks that did not change keep forwarding and keep what they
   * learned; a network whose bridge, TAP, MTU or FDB limit changed is
   * restarted. Returns one line per change; failures are logged and skipped.
   */
  async reload(next: DaemonConfig): Promise<string[]> {
    const changes: string[] = [];
    const previous = this.applied;
    for (const key of ['port', 'local', 'dev', 'dontFragment', 'control', 'metrics', 'offload', 'sourcePorts', 'evpn'] as const) {
      if (JSON.stringify(previous[key]) !== JSON.stringify(next[key])) {
        this.log.warn({ setting: key }, `${key} changed in the file; that takes a restart, keeping the running value`);
      }
    }
    if (previous.learnRemotes !== next.learnRemotes) {
      this.engine.learnRemotes = next.learnRemotes;
      changes.push(`learnRemotes ${next.learnRemotes}`);
    }
    if (previous.logLevel !== next.logLevel) {
      this.log.level = next.logLevel;
      changes.push(`logLevel ${next.logLevel}`);
    }
    this.applied = { ...next, port: previous.port, local: previous.local, dev: previous.dev, dontFragment: previous.dontFragment, control: previous.control, metrics: previous.metrics, offload: previous.offload, sourcePorts: previous.sourcePorts, evpn: previous.evpn, networks: previous.networks };

    const wanted = new Map(next.networks.map((n) => [n.vni, n]));
    for (const old of previous.networks) {
      if (!wanted.has(old.vni)) {
        await this.attempt(changes, `VNI ${old.vni} removed`, async () => this.removeNetwork(old.vni));
      }
    }
    for (const config of next.networks) {
      const old = previous.networks.find((n) => n.vni === config.vni);
      if (!old || !this.running.has(config.vni)) {
        await this.attempt(changes, `VNI ${config.vni} added`, () => this.addNetwork(config));
      } else if (needsRestart(old, config)) {
        await this.attempt(changes, `VNI ${config.vni} restarted`, async () => {
          this.removeNetwork(config.vni);
          await this.addNetwork(config);
        });
      } else {
        await this.attempt(changes, `VNI ${config.vni} updated`, async () => this.updateNetwork(old, config, changes));
      }
    }
    return changes.filter((line) => !line.endsWith('updated'));
  }

  /** Stops forwarding and closes every descriptor; the kernel removes the TAPs. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.housekeeping) clearInterval(this.housekeeping);
    this.linkWatch?.stop();
    for (const r of this.running.values()) {
      this.engine.removeNetwork(r.info.vni);
      try {
        detachFromBridgeSync(r.tap.name, r.info.bridge, r.bridgeKind);
      } catch (error) {
        this.log.warn({ vni: r.info.vni, err: (error as Error).message }, `VNI ${r.info.vni}: ${(error as Error).message}`);
      }
      r.tap.close();
    }
    this.running.clear();
    this.socket?.close();
    this.socket = undefined;
    this.senders?.close();
    this.senders = undefined;
  }

  /** FDB entries of one VNI or all, for display. */
  fdbEntries(vni?: number): { vni: number; mac: string; remote: string; isStatic: boolean; ageSeconds: number }[] {
    const out: { vni: number; mac: string; remote: string; isStatic: boolean; ageSeconds: number }[] = [];
    for (const r of this.running.values()) {
      if (vni !== undefined && r.info.vni !== vni) continue;
      for (const entry of r.network.fdb.entries()) {
        out.push({
          vni: r.info.vni,
          mac: formatMac(entry.macHigh, entry.macLow),
          remote: this.remotes.get(entry.remoteId)?.address ?? '?',
          isStatic: entry.isStatic,
          ageSeconds: Math.floor(entry.ageMs / 1000),
        });
      }
    }
    return out;
  }

  // ------------------------------------------------------------ internals

  private updateNetwork(old: NetworkConfig, config: NetworkConfig, changes: string[]): void {
    const { network } = this.requireNetwork(config.vni);
    const oldPeers = new Set(old.peers.map(canonicalAddress));
    const newPeers = new Set(config.peers.map(canonicalAddress));
    for (const peer of newPeers) if (!oldPeers.has(peer) && this.addPeer(config.vni, peer)) changes.push(`VNI ${config.vni}: peer ${peer} added`);
    const key = (e: { mac: string; remote: string }) => `${e.mac.toLowerCase()}>${canonicalAddress(e.remote)}`;
    const newStatic = new Set(config.static.map(key));
    for (const entry of old.static) {
      if (!newStatic.has(key(entry)) && !config.static.some((e) => e.mac.toLowerCase() === entry.mac.toLowerCase())) {
        this.removeStatic(config.vni, entry.mac);
        changes.push(`VNI ${config.vni}: static ${entry.mac} removed`);
      }
    }
    for (const peer of oldPeers) if (!newPeers.has(peer) && this.removePeer(config.vni, peer)) changes.push(`VNI ${config.vni}: peer ${peer} removed`);
    const oldStatic = new Set(old.static.map(key));
    for (const entry of config.static) {
      if (!oldStatic.has(key(entry))) {
        this.addStatic(config.vni, entry.mac, entry.remote);
        changes.push(`VNI ${config.vni}: static ${entry.mac} -> ${entry.remote}`);
      }
    }
    if (old.ageingSeconds !== config.ageingSeconds) {
      network.fdb.ageingMs = config.ageingSeconds * 1000;
      changes.push(`VNI ${config.vni}: ageing ${config.ageingSeconds}s`);
    }
    if (old.floodRate !== config.floodRate || old.floodBurst !== config.floodBurst) {
      network.floodLimiter = floodLimiter(config, this.clock);
      changes.push(`VNI ${config.vni}: flood rate ${config.floodRate === 0 ? 'unlimited' : `${config.floodRate}/s, burst ${config.floodBurst ?? config.floodRate}`}`);
    }
    const running = this.running.get(config.vni) as RunningNetwork;
    running.config = config;
    this.applied = { ...this.applied, networks: [...this.applied.networks.filter((n) => n.vni !== config.vni), config] };
  }

  private async attempt(changes: string[], what: string, action: () => Promise<void>): Promise<void> {
    try {
      await action();
      changes.push(what);
    } catch (error) {
      this.log.error({ err: (error as Error).message }, `${what.replace(/ \w+$/, '')}: change failed: ${(error as Error).message}`);
    }
  }

  private putStatic(network: Network, mac: string, remoteAddress: string): void {
    const parsed = parseMac(mac);
    if (!parsed) throw new ChangeError(`${mac} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
    const id = this.remoteId(remoteAddress);
    if (id < 0 || !network.isPeer(id)) {
      throw new ChangeError(`${remoteAddress} is not a peer of VNI ${network.vni} (add it as a peer first)`);
    }
    network.fdb.addStatic(parsed.high, parsed.low, id);
  }

  private requireNetwork(vni: number): RunningNetwork {
    const running = this.running.get(vni);
    if (!running) throw new ChangeError(`VNI ${vni} is not configured here`, 404);
    return running;
  }

  private remoteId(address: string): number {
    return this.remotes.find(checkAddress(address));
  }

  private peerAddresses(network: Network): string[] {
    return network.peers.map((id) => this.remotes.get(id)?.address ?? '?');
  }

  /** Forgets remotes that no network lists as a peer any more. */
  private pruneRemotes(): void {
    for (const remote of this.remotes.all()) {
      if (remote.learned) continue;
      const used = [...this.running.values()].some((r) => r.network.isPeer(remote.id));
      if (!used) {
        for (const r of this.running.values()) r.network.fdb.forgetRemote(remote.id);
        this.remotes.remove(remote.id);
      }
    }
  }

  private refreshOverlayMtu(vni: number): void {
    const running = this.running.get(vni);
    if (!running || running.config.mtu !== undefined) return;
    overlayMtuFor(this.peerAddresses(running.network))
      .then((mtu) => {
        running.network.overlayMtu = mtu;
        running.info.overlayMtu = mtu;
      })
      .catch(() => undefined);
  }

  private onTapReadable(network: Network, tap: TapDevice, errno: number): void {
    // The kernel reports a TAP deleted under its descriptor as a poll error (and EBADFD on read).
    if (errno !== 0) {
      this.tapLost(network.vni, tap, `polling it failed: ${errnoName(errno)}`);
      return;
    }
    try {
      this.engine.drainTap(network);
    } catch (error) {
      if (isErrnoError(error) && error.errno === EBADFD) this.tapLost(network.vni, tap, 'reading it failed: EBADFD');
      else this.failIo(`reading ${tap.name}`, error);
    }
  }

  private onSocketReadable(errno: number): void {
    if (errno !== 0) {
      // The poller has stopped (see UdpSocket.watch): without it nothing is received, so stop rather than linger.
      this.failIo('polling the UDP socket', new Error(errnoName(errno)));
      return;
    }
    try {
      this.engine.drainSocket();
    } catch (error) {
      this.failIo('receiving from the UDP socket', error);
    }
  }

  /**
   * A TAP deleted from outside: the network cannot work without it, and
   * recreating it would undo what someone did on purpose. Say so once and
   * stop (exit 1); starting tsvtep again makes a new one.
   */
  private tapLost(vni: number, tap: TapDevice, why: string): void {
    if (this.stopped || this.running.get(vni)?.tap !== tap) return;
    this.log.fatal(
      { vni, tap: tap.name, reason: why },
      `TAP ${tap.name} of VNI ${vni} was deleted from outside (${why}); shutting down (start tsvtep again to recreate it)`,
    );
    this.stop();
    this.onFatal();
  }

  private startLinkWatch(): void {
    this.linkWatch = new LinkWatch({
      log: this.log,
      networks: () =>
        [...this.running.values()].map(
          (r): WatchedNetwork => ({ network: r.network, tap: r.tap.name, bridge: r.info.bridge, kind: r.bridgeKind, tapMtu: r.info.tapMtu, token: r.tap }),
        ),
      onTapGone: (watched) => this.tapLost(watched.network.vni, watched.token as TapDevice, 'it is no longer there'),
      onRecovered: (what, vni) => this.engine.rearmIoErrorReports(what, vni),
    });
    this.linkWatch.start();
  }

  /** A read error that will not go away: say so once and stop, rather than spin. */
  private failIo(what: string, error: unknown): void {
    const message = isErrnoError(error) ? error.code : (error as Error).message;
    this.log.fatal({ err: error }, `${what} failed (${message}); shutting down`);
    this.stop();
    this.onFatal();
  }
}

/** The VNI's flood rate limit, or undefined for none (floodRate 0). */
function floodLimiter(config: NetworkConfig, clock: Clock): TokenBucket | undefined {
  if (config.floodRate === 0) return undefined;
  return new TokenBucket(config.floodRate, config.floodBurst ?? config.floodRate, clock);
}

function needsRestart(old: NetworkConfig, next: NetworkConfig): boolean {
  return old.bridge !== next.bridge || old.dockerNetwork !== next.dockerNetwork || old.tap !== next.tap || old.mtu !== next.mtu || old.maxAddresses !== next.maxAddresses;
}

/** A peer that is an address of this host would send every flooded frame back to us. */
function refuseOwnAddress(vni: number, peer: string, error: new (message: string) => Error): void {
  const canonical = checkAddress(peer);
  for (const addresses of Object.values(networkInterfaces())) {
    for (const local of addresses ?? []) {
      if (canonicalAddress(local.address) === canonical) {
        throw new error(`VNI ${vni}: peer ${peer} is an address of this host (the peers are the other hosts)`);
      }
    }
  }
}

function checkAddress(address: string): string {
  try {
    return canonicalAddress(address);
  } catch {
    throw new ChangeError(`${address} is not an IPv4 or IPv6 address`);
  }
}

function loadNative(): void {
  try {
    native();
  } catch (error) {
    throw new StartupError((error as Error).message);
  }
}

/**
 * Checks that name is a bridge we can attach to; returns its kind, the MTU
 * for its TAP: the bridge's, or its largest port's if bigger (the bridge's own
 * MTU follows its smallest port), so that no frame a port sends is too big for
 * the TAP; and whether the bridge takes frames from a TAP with offloads (Open
 * vSwitch's userspace datapath does not).
 */
async function checkBridge(name: string): Promise<{ kind: BridgeKind; mtu: number; offload: boolean }> {
  try {
    const kind = await bridgeKind(name);
    const link = await getLink(name);
    const portMtus = kind === 'openvswitch' ? await ovsPortMtus(name) : await bridgePortMtus(name);
    const offload = kind !== 'openvswitch' || !(await ovsUserspaceDatapath(name));
    return { kind, mtu: Math.max(link?.mtu ?? 1500, ...portMtus), offload };
  } catch (error) {
    if (error instanceof LinkError || error instanceof OvsError) throw new StartupError(error.message);
    throw error;
  }
}

/** The network's bridge: as configured, or the one behind its Docker network. */
async function bridgeOf(config: NetworkConfig): Promise<string> {
  if (config.bridge !== undefined) return config.bridge;
  try {
    return await dockerNetworkBridge(config.dockerNetwork as string);
  } catch (error) {
    if (error instanceof DockerError) throw new StartupError(error.message);
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
  return Number.isFinite(smallest) ? smallest : 1500 - OVERHEAD_IPV4;
}

function openSocket(bindAddress: string | undefined, config: DaemonConfig): UdpSocket {
  const address = bindAddress ?? '::';
  try {
    return UdpSocket.open(address, config.port, config.dontFragment);
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

function openTap(name: string, offload: boolean): TapDevice {
  try {
    return TapDevice.open(name, offload);
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

/** Linux's "file descriptor in bad state": what a TAP deleted under its descriptor answers. Node has no constant for it. */
const EBADFD = 77;

const ERRNO_NAMES = new Map<number, string>([[EBADFD, 'EBADFD'], ...Object.entries(constants.errno).map(([name, value]): [number, string] => [value, name])]);

/** 'EPERM' for 1, and so on, for log lines. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}
