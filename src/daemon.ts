// The daemon: wires the engine to the native TAPs and UDP socket, and owns
// start-up, runtime changes (reload, control interface) and shutdown.
// Start-up either completes or undoes everything it did, so a failed start
// leaves no TAP behind. What a reload changes is decided by reload-plan.ts,
// what a failed start says by startup-errors.ts, what the host looks like by
// io/bridge-info.ts and io/overlay-mtu.ts; the control and metrics servers
// see it through ControlApi and MetricsSource only.

import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { canonicalAddress } from './core/address';
import { systemClock, type Clock } from './core/clock';
import { Engine } from './core/engine';
import { formatMac, parseMac } from './core/ethernet';
import { Fdb } from './core/fdb';
import { Network } from './core/network';
import { ipv4Broadcast, peerAddressProblem } from './core/peer-address';
import { TokenBucket } from './core/rate-limit';
import { RemoteTable } from './core/remotes';
import { defaultTapName, type DaemonConfig, type NetworkConfig } from './config';
import { PeerOrigins } from './control-plane/origins';
import type { Origin, RunningControlPlane } from './control-plane/source';
import { ChangeError, type ControlApi } from './control/api';
import { fdbViews, networkViews, peerAddresses, peerViews } from './control/snapshot';
import type { EngineView, FdbView, NetworkInfo, NetworkView, PeerView } from './control/views';
import { bridgeName, inspectBridge } from './io/bridge-info';
import { EBADFD, errnoName } from './io/errno';
import { attachToBridge, detachFromBridge, detachFromBridgeSync, deviceAddress, type BridgeKind } from './io/link';
import { isErrnoError, native } from './io/native';
import { overlayMtuTowards } from './io/overlay-mtu';
import { nativeSegmenter } from './io/segmenter';
import { TapDevice } from './io/tap';
import { SourcePortPool } from './io/source-ports';
import { UdpSocket } from './io/udp';
import { LinkWatch, type WatchedNetwork } from './io/watch';
import type { HealthSource, MetricsSource } from './metrics';
import { actionVni, describeAction, describeChange, planReload, RESTART_SETTINGS, type NetworkChange, type ReloadAction } from './reload-plan';
import { addonError, attachError, bindError, sourcePortsError, StartupError, startupStep, tapError } from './startup-errors';

/** An inner 802.1Q tag may ride on top of the TAP's MTU. */
const VLAN_TAG = 4;
const BATCH_SIZE = 64;
const HOUSEKEEPING_MS = 5_000;
/** Frame slots are sized once, at start-up; networks added later must fit. */
const MIN_FRAME_SIZE = 9000 + 14 + VLAN_TAG;

interface RunningNetwork {
  /** How the TAP was attached, so that it is detached the same way. */
  bridgeKind: BridgeKind;
  config: NetworkConfig;
  info: NetworkInfo;
  network: Network;
  tap: TapDevice;
}

export class Daemon implements ControlApi {
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
  private readonly engine: Engine;
  private readonly remotes: RemoteTable;
  /** Who wants each peer (static, etcd, evpn); a peer goes when nobody does. */
  private readonly peerOrigins = new PeerOrigins();
  /** The fleet control plane (--etcd or --evpn), if any; for status, metrics and /healthz. */
  controlPlane: RunningControlPlane | undefined;
  /** See watchNetworks. */
  private networksListener: (networks: Network[]) => void = () => undefined;
  private readonly mtuRefreshes = new Set<number>();
  /** Where each FDB entry that is not learned came from, per VNI: mac -> origin. */
  private readonly entryOrigins = new Map<number, Map<string, Origin>>();
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
    try {
      native();
    } catch (error) {
      throw addonError(error);
    }
    const tapMtus: number[] = [];
    for (const network of config.networks) tapMtus.push((await startupStep(async () => inspectBridge(await bridgeName(network)))).tapMtu);
    const maxFrameSize = Math.max(MIN_FRAME_SIZE, ...tapMtus.map((mtu) => mtu + 14 + VLAN_TAG));

    const dev = config.dev;
    const bindAddress = config.local ?? (dev ? await startupStep(() => deviceAddress(dev)) : undefined);
    const socket = openSocket(bindAddress, config);
    let senders: SourcePortPool | undefined;
    try {
      senders = config.sourcePorts > 1 ? SourcePortPool.open(socket, socket.localAddress().address, config.sourcePorts, config.dontFragment) : undefined;
    } catch (error) {
      socket.close();
      throw sourcePortsError(error, config.port);
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
    return [...this.running.values()].map((r) => ({ ...r.info, peers: peerAddresses(r.network, this.remotes) }));
  }

  /** What the metrics collectors and the health check read. */
  metricsSource(): MetricsSource & HealthSource {
    return { engine: this.engine, remotes: this.remotes, isUp: () => this.isUp(), networks: () => this.networks(), controlPlane: this.controlPlane };
  }

  /**
   * Tells listener the networks served now, and again after each one added or
   * removed: the control plane puts its TAP observer on them and announces
   * their VNIs. One listener.
   */
  watchNetworks(listener: (networks: Network[]) => void): void {
    this.networksListener = listener;
    listener(this.servedNetworks());
  }

  private servedNetworks(): Network[] {
    return [...this.running.values()].map((r) => r.network);
  }

  isUp(): boolean {
    return !this.stopped && this.socket !== undefined;
  }

  // ------------------------------------------------------------ runtime changes

  /** Creates the network's TAP, attaches it to its bridge and starts forwarding. */
  async addNetwork(config: NetworkConfig): Promise<void> {
    if (this.running.has(config.vni)) throw new ChangeError(`VNI ${config.vni} is already running`, 'conflict');
    for (const peer of config.peers) refuseOwnAddress(config.vni, peer, StartupError);
    // Not the overlay MTU: frames up to what the bridge's ports send must reach
    // us, to be answered or fragmented, rather than be dropped by the bridge.
    const bridge = await startupStep(() => bridgeName(config));
    const { kind, tapMtu, offload } = await startupStep(() => inspectBridge(bridge));
    if (tapMtu + 14 + VLAN_TAG > this.maxFrameSize) {
      throw new StartupError(`VNI ${config.vni}: MTU ${tapMtu} is larger than this daemon can carry (restart it)`);
    }
    const tap = openTap(config.tap ?? defaultTapName(config.vni), this.applied.offload && offload);
    if (tap.offloadError) this.log.warn({ vni: config.vni }, `TAP offloads refused (${tap.offloadError}): frames come one by one`);
    try {
      await attachToBridge(tap.name, bridge, tapMtu, kind);
    } catch (error) {
      tap.close();
      throw attachError(error, tap.name, bridge);
    }
    const fdb = new Fdb({ ageingMs: config.ageingSeconds * 1000, maxEntries: config.maxAddresses, clock: this.clock });
    const network = new Network(config.vni, fdb, tap);
    network.floodLimiter = floodLimiter(config.floodRate, config.floodBurst, this.clock);
    network.learnedRemotes.limit = config.maxRemotes;
    for (const peer of config.peers) {
      const remote = this.remotes.add(peer);
      network.addPeer(remote.id);
      this.peerOrigins.add(config.vni, remote.address, 'static');
    }
    for (const entry of config.static) {
      this.putStatic(network, entry.mac, entry.remote);
      this.originsOf(config.vni).set(entry.mac.toLowerCase(), 'static');
    }
    network.overlayMtu = config.mtu ?? (await overlayMtuTowards(config.peers));
    this.engine.addNetwork(network);
    const info: NetworkInfo = { vni: config.vni, bridge, tap: tap.name, tapMtu, overlayMtu: network.overlayMtu, peers: [] };
    this.running.set(config.vni, { config, info, network, tap, bridgeKind: kind });
    this.applied = { ...this.applied, networks: [...this.applied.networks.filter((n) => n.vni !== config.vni), config] };
    tap.watch((errno) => this.onTapReadable(network, tap, errno));

    const peers = peerAddresses(network, this.remotes);
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
    this.networksListener(this.servedNetworks());
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
    this.peerOrigins.forgetNetwork(vni);
    this.entryOrigins.delete(vni);
    this.pruneRemotes();
    this.log.info({ vni }, `VNI ${vni}: removed (${running.tap.name} deleted)`);
    this.networksListener(this.servedNetworks());
  }

  hasNetwork(vni: number): boolean {
    return this.running.has(vni);
  }

  /** Makes address a peer of vni on behalf of origin; false if it already was one. */
  addPeer(vni: number, address: string, origin: Origin = 'static'): boolean {
    const { network } = this.requireNetwork(vni);
    const problem = peerAddressProblem(address);
    if (problem !== undefined) throw new ChangeError(`${address} ${problem}`, 'invalid');
    refuseOwnAddress(vni, address, ChangeError);
    const remote = this.remotes.add(checkAddress(address));
    this.peerOrigins.add(vni, remote.address, origin);
    if (network.isPeer(remote.id)) return false;
    network.addPeer(remote.id);
    this.refreshOverlayMtu(vni);
    this.log[origin === 'static' ? 'info' : 'debug']({ vni, peer: remote.address, origin }, `VNI ${vni}: peer ${remote.address} added (${origin})`);
    return true;
  }

  /**
   * Takes origin's claim off the peer; the peer (and what was learned behind
   * it) goes once no origin wants it. False if origin did not have it as a peer.
   */
  removePeer(vni: number, address: string, origin: Origin = 'static'): boolean {
    const { network } = this.requireNetwork(vni);
    const id = this.remoteId(address);
    const canonical = canonicalAddress(address);
    if (id < 0 || !network.isPeer(id) || !this.peerOrigins.of(vni, canonical).includes(origin)) return false;
    const stillWanted = this.peerOrigins.remove(vni, canonical, origin);
    if (stillWanted > 0) {
      this.log.info({ vni, peer: canonical, origin }, `VNI ${vni}: peer ${canonical} no longer ${origin}; kept (${this.peerOrigins.of(vni, canonical).join(', ')})`);
      return true;
    }
    network.removePeer(id);
    this.pruneRemotes();
    this.refreshOverlayMtu(vni);
    this.log[origin === 'static' ? 'info' : 'debug']({ vni, peer: canonical, origin }, `VNI ${vni}: peer ${canonical} removed (${origin})`);
    return true;
  }

  /**
   * An FDB entry from a control plane: mac behind vtep (a peer), never aged or
   * moved by learning. A static entry of the user's for the same MAC wins.
   */
  putRemoteMac(vni: number, mac: string, vtep: string, origin: Origin): void {
    const { network } = this.requireNetwork(vni);
    const origins = this.originsOf(vni);
    if (origins.get(mac) === 'static') return;
    this.putStatic(network, mac, vtep);
    origins.set(mac, origin);
  }

  removeRemoteMac(vni: number, mac: string, origin: Origin): void {
    const origins = this.originsOf(vni);
    if (origins.get(mac) !== origin) return;
    origins.delete(mac);
    const parsed = parseMac(mac);
    if (parsed) this.running.get(vni)?.network.fdb.remove(parsed.high, parsed.low);
  }

  /** Adds or replaces a static FDB entry; the remote must be a peer of the VNI. */
  addStatic(vni: number, mac: string, remoteAddress: string): void {
    const { network } = this.requireNetwork(vni);
    this.putStatic(network, mac, remoteAddress);
    this.originsOf(vni).set(mac.toLowerCase(), 'static');
    this.log.info({ vni, mac, remote: remoteAddress }, `VNI ${vni}: static entry ${mac} -> ${remoteAddress}`);
  }

  removeStatic(vni: number, mac: string): boolean {
    const { network } = this.requireNetwork(vni);
    const parsed = parseMac(mac);
    if (!parsed) throw new ChangeError(`${mac} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
    this.originsOf(vni).delete(formatMac(parsed.high, parsed.low));
    return network.fdb.remove(parsed.high, parsed.low);
  }

  private originsOf(vni: number): Map<string, Origin> {
    let origins = this.entryOrigins.get(vni);
    if (!origins) this.entryOrigins.set(vni, (origins = new Map()));
    return origins;
  }

  /**
   * Applies a new configuration: carries out planReload(applied, next).
   * Returns one line per change made; a failing action is logged and skipped
   * (its network keeps its previous configuration, to be retried next time).
   */
  async reload(next: DaemonConfig): Promise<string[]> {
    const previous = this.applied;
    // Only running networks count: one that failed to restart is added again.
    const actions = planReload({ ...previous, networks: previous.networks.filter((n) => this.running.has(n.vni)) }, next);
    const kept = Object.fromEntries(RESTART_SETTINGS.map((setting) => [setting, previous[setting]]));
    this.applied = { ...next, ...kept, networks: previous.networks };
    const done: string[] = [];
    for (const action of actions) {
      try {
        await this.perform(action, done);
        const line = describeAction(action);
        if (line !== undefined) done.push(line);
      } catch (error) {
        const message = (error as Error).message;
        const vni = actionVni(action);
        this.log.error({ vni, err: message }, `${vni === undefined ? 'reload' : `VNI ${vni}`}: change failed: ${message}`);
      }
    }
    return done;
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

  // ------------------------------------------------------------ views (ControlApi)

  networkViews(): NetworkView[] {
    return networkViews(this.running.values(), this.remotes);
  }

  engineCounters(): EngineView {
    const counters = this.engine.counters;
    return { rxDatagrams: counters.rxDatagrams, drops: { ...counters.drops } };
  }

  peerViews(vni?: number): PeerView[] {
    return peerViews(this.running.values(), this.remotes, vni, (v, address) => this.peerOrigins.of(v, address));
  }

  fdbViews(vni?: number): FdbView[] {
    return fdbViews(this.running.values(), this.remotes, vni, (v, mac) => this.entryOrigins.get(v)?.get(mac));
  }

  // ------------------------------------------------------------ internals

  /** One reload action; update-network reports each change it made in done. */
  private async perform(action: ReloadAction, done: string[]): Promise<void> {
    switch (action.kind) {
      case 'keep-setting':
        this.log.warn({ setting: action.setting }, `${action.setting} changed in the file; that takes a restart, keeping the running value`);
        return;
      case 'set-learn-remotes':
        this.engine.learnRemotes = action.enabled;
        return;
      case 'set-log-level':
        this.log.level = action.level;
        return;
      case 'remove-network':
        this.removeNetwork(action.vni);
        return;
      case 'add-network':
        await this.addNetwork(action.config);
        return;
      case 'restart-network':
        this.removeNetwork(action.config.vni);
        await this.addNetwork(action.config);
        return;
      case 'update-network':
        this.updateNetwork(action.config, action.changes, done);
        return;
    }
  }

  /** Makes the changes in order; stops at the first that fails, keeping the previous configuration. */
  private updateNetwork(config: NetworkConfig, changes: NetworkChange[], done: string[]): void {
    const running = this.requireNetwork(config.vni);
    const { network } = running;
    for (const change of changes) {
      let changed = true;
      switch (change.kind) {
        case 'add-peer':
          changed = this.addPeer(config.vni, change.address);
          break;
        case 'remove-peer':
          changed = this.removePeer(config.vni, change.address);
          break;
        case 'add-static':
          this.addStatic(config.vni, change.mac, change.remote);
          break;
        case 'remove-static':
          this.removeStatic(config.vni, change.mac);
          break;
        case 'set-ageing':
          network.fdb.ageingMs = change.seconds * 1000;
          break;
        case 'set-flood-limit':
          network.floodLimiter = floodLimiter(change.rate, change.burst, this.clock);
          break;
        case 'set-max-remotes':
          network.learnedRemotes.limit = change.limit;
          break;
      }
      if (changed) done.push(describeChange(config.vni, change));
    }
    running.config = config;
    this.applied = { ...this.applied, networks: [...this.applied.networks.filter((n) => n.vni !== config.vni), config] };
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
    if (!running) throw new ChangeError(`VNI ${vni} is not configured here`, 'not-found');
    return running;
  }

  private remoteId(address: string): number {
    return this.remotes.find(checkAddress(address));
  }

  /** Forgets remotes that no network lists as a peer any more. */
  private pruneRemotes(): void {
    for (const remote of this.remotes.all()) {
      if (remote.learned) continue;
      // Still a learned remote of some VNI: it ages out there (see core/learned-remotes.ts).
      if ([...this.running.values()].some((r) => r.network.learnedRemotes.has(remote.id))) {
        remote.learned = true;
        continue;
      }
      const used = [...this.running.values()].some((r) => r.network.isPeer(remote.id));
      if (!used) {
        for (const r of this.running.values()) r.network.fdb.forgetRemote(remote.id);
        this.remotes.remove(remote.id);
      }
    }
  }

  /** Recomputes the VNI's overlay MTU soon; a burst of peer changes (a control plane's) is one refresh. */
  private refreshOverlayMtu(vni: number): void {
    const running = this.running.get(vni);
    if (!running || running.config.mtu !== undefined || this.mtuRefreshes.has(vni)) return;
    this.mtuRefreshes.add(vni);
    setImmediate(() => {
      this.mtuRefreshes.delete(vni);
      overlayMtuTowards(peerAddresses(running.network, this.remotes))
        .then((mtu) => {
          running.network.overlayMtu = mtu;
          running.info.overlayMtu = mtu;
        })
        .catch(() => undefined);
    });
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

/** A VNI's flood rate limit, or undefined for none (rate 0); the burst defaults to one second's worth. */
function floodLimiter(rate: number, burst: number | undefined, clock: Clock): TokenBucket | undefined {
  if (rate === 0) return undefined;
  return new TokenBucket(rate, burst ?? rate, clock);
}

/** A peer that is an address of this host would send every flooded frame back to us. */
function refuseOwnAddress(vni: number, peer: string, error: new (message: string) => Error): void {
  const canonical = checkAddress(peer);
  const { addresses, broadcasts } = ownAddresses();
  if (addresses.has(canonical)) {
    throw new error(`VNI ${vni}: peer ${peer} is an address of this host (the peers are the other hosts)`);
  }
  const cidr = broadcasts.get(canonical);
  if (cidr !== undefined) {
    throw new error(`VNI ${vni}: peer ${peer} is the broadcast address of ${cidr} (give the address of the other host)`);
  }
}

/**
 * This host's addresses and the IPv4 broadcast addresses of its subnets (with
 * their CIDR), read at most once a second: a control plane adds thousands of
 * peers at once.
 */
let ownAddressCache: { at: number; addresses: Set<string>; broadcasts: Map<string, string> } | undefined;
function ownAddresses(): { addresses: Set<string>; broadcasts: Map<string, string> } {
  if (ownAddressCache === undefined || Date.now() - ownAddressCache.at > 1_000) {
    const addresses = new Set<string>();
    const broadcasts = new Map<string, string>();
    for (const list of Object.values(networkInterfaces())) {
      for (const local of list ?? []) {
        addresses.add(canonicalAddress(local.address));
        const prefix = Number(local.cidr?.split('/')[1]);
        const broadcast = local.family === 'IPv4' ? ipv4Broadcast(local.address, prefix) : undefined;
        if (broadcast !== undefined && local.cidr) broadcasts.set(broadcast, local.cidr);
      }
    }
    ownAddressCache = { at: Date.now(), addresses, broadcasts };
  }
  return ownAddressCache;
}

function checkAddress(address: string): string {
  try {
    return canonicalAddress(address);
  } catch {
    throw new ChangeError(`${address} is not an IPv4 or IPv6 address`);
  }
}

function openSocket(bindAddress: string | undefined, config: DaemonConfig): UdpSocket {
  const address = bindAddress ?? '::';
  try {
    return UdpSocket.open(address, config.port, config.dontFragment);
  } catch (error) {
    if (isErrnoError(error) && error.code === 'EAFNOSUPPORT' && bindAddress === undefined) {
      return openSocket('0.0.0.0', config);
    }
    throw bindError(error, address, config.port);
  }
}

function openTap(name: string, offload: boolean): TapDevice {
  try {
    return TapDevice.open(name, offload);
  } catch (error) {
    throw tapError(error, name);
  }
}

function formatEndpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
