// BGP EVPN as a control-plane source, through a gobgpd the user runs and
// peers as they like (tsvtep never configures BGP sessions).
//
// Out: per served VNI a type-3 route (this host is a VTEP of it), and a type-2
// route per local MAC. In: type-3 routes of other VTEPs are the VNI's members
// (flood list), type-2 routes its remote MACs, a MAC behind two VTEPs going to
// the higher MAC mobility sequence number (then the lower VTEP address, RFC
// 7432 section 15.1). Routes of this host are ignored.
//
// gobgpd may be absent, restart or hang: the sink keeps the last state (so
// forwarding goes on), the source retries with backoff, and a new session
// re-announces everything, then resynchronises by listing the paths (a watch
// opened before the listing catches what changes meanwhile). An outage is
// logged once, when it starts, and once more when it ends.

import { canonicalAddress } from '../../core/address';
import { EMPTY_VNI_STATE, type ControlPlaneSink, type ControlPlaneSource, type ControlPlaneStatus, type RemoteMac, type VniState } from '../source';
import { describeGrpcError, type EvpnRib } from './gobgp-client';
import {
  decodePath,
  inclusiveMulticastPath,
  isLocalPath,
  macIpPath,
  routeKey,
  type AnyCodec,
  type ApiPath,
  type EvpnRoute,
  type MacIpRoute,
  type Originator,
} from './routes';

export interface EvpnLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface EvpnSourceOptions {
  codec: AnyCodec;
  /** A new connection to gobgpd (one per session). */
  connect: () => EvpnRib;
  /** Shown in the log: gobgpd's API address. */
  api: string;
  originator: Originator;
  log: EvpnLog;
  /** Delays between attempts, doubling from the first to the last (ms). */
  backoffMs?: { first: number; max: number };
  /** Coalesces a burst of route changes into one replace per VNI (ms). */
  settleMs?: number;
  /** Most routes imported; more are skipped as 'over_limit' (a hostile or broken fabric cannot grow us without bound). */
  maxRoutes?: number;
  /** Bounds stop()'s withdrawals (ms). */
  stopTimeoutMs?: number;
  setTimer?: (callback: () => void, ms: number) => { unref?: () => unknown };
  clearTimer?: (timer: unknown) => void;
}

/** EVPN counters beyond ControlPlaneStatus, for metrics. */
export interface EvpnCounters {
  routesImported: number;
  macMoves: number;
  announced: number;
}

interface LocalMac {
  ips: readonly string[];
  seq: number;
}

export class EvpnSource implements ControlPlaneSource {
  readonly origin = 'evpn' as const;
  private sink: ControlPlaneSink | undefined;
  private readonly served = new Set<number>();
  /** The RD's assigned part per VNI: small, stable while the VNI is served, unique on this host. */
  private readonly rdIndex = new Map<number, number>();
  private readonly localMacs = new Map<number, Map<string, LocalMac>>();
  /** This host's paths as gobgpd should have them, by route key. */
  private readonly own = new Map<string, ApiPath>();
  /** Other VTEPs' routes, by route key. */
  private rib = new Map<string, EvpnRoute>();
  /** What each VNI's MACs resolved to last time, to count moves. */
  private readonly resolved = new Map<number, Map<string, string>>();
  private rpc: EvpnRib | undefined;
  private up = false;
  private stopped = false;
  private everUp = false;
  private outageLogged = false;
  private lastError: string | undefined = 'not connected yet';
  private watchRestarts = 0;
  private failures = 0;
  private readonly skipped: Record<string, number> = {};
  readonly counters: EvpnCounters = { routesImported: 0, macMoves: 0, announced: 0 };
  private readonly dirty = new Set<number>();
  private settleTimer: unknown;
  private retryTimer: unknown;
  private readonly setTimer: NonNullable<EvpnSourceOptions['setTimer']>;
  private readonly clearTimer: NonNullable<EvpnSourceOptions['clearTimer']>;

  constructor(private readonly options: EvpnSourceOptions) {
    this.setTimer = options.setTimer ?? ((callback, ms) => setTimeout(callback, ms));
    this.clearTimer = options.clearTimer ?? ((timer) => clearTimeout(timer as NodeJS.Timeout));
  }

  onMacLost: (vni: number, mac: string) => void = () => undefined;

  start(sink: ControlPlaneSink): void {
    this.sink = sink;
    this.connect();
  }

  serve(vnis: readonly number[]): void {
    const wanted = new Set(vnis);
    for (const vni of [...this.served]) {
      if (wanted.has(vni)) continue;
      this.served.delete(vni);
      for (const mac of [...(this.localMacs.get(vni)?.keys() ?? [])]) this.withdrawMac(vni, mac);
      this.localMacs.delete(vni);
      this.unannounce(imetKey(vni));
      this.rdIndex.delete(vni);
      this.resolved.delete(vni);
      this.dirty.delete(vni);
      // The sink forgets what it applied there (the network, and its peers, are gone or going).
      this.sink?.replace(vni, EMPTY_VNI_STATE);
    }
    for (const vni of wanted) {
      if (this.served.has(vni)) continue;
      this.served.add(vni);
      this.rdIndex.set(vni, this.freeRdIndex());
      this.announce(imetKey(vni), inclusiveMulticastPath(this.options.codec, this.options.originator, vni, this.rdIndex.get(vni) as number));
      this.markDirty(vni);
    }
  }

  announceMac(vni: number, mac: string, ips: readonly string[]): void {
    if (!this.served.has(vni)) return;
    const macs = this.localMacs.get(vni) ?? new Map<string, LocalMac>();
    this.localMacs.set(vni, macs);
    const known = macs.get(mac);
    const sortedIps = [...new Set(ips.map(canonicalAddress))].sort();
    if (known && known.ips.join() === sortedIps.join()) return;
    // Moved here from another VTEP: beat its sequence number (RFC 7432 section 15).
    const entry: LocalMac = { ips: sortedIps, seq: known?.seq ?? this.remoteSeq(vni, mac) + 1 };
    macs.set(mac, entry);
    for (const key of this.ownMacKeys(vni, mac)) if (!this.wantedMacKeys(vni, mac, entry).has(key)) this.unannounce(key);
    this.announceLocal(vni, mac, entry);
  }

  withdrawMac(vni: number, mac: string): void {
    const macs = this.localMacs.get(vni);
    if (!macs?.delete(mac)) return;
    for (const key of this.ownMacKeys(vni, mac)) this.unannounce(key);
  }

  status(): ControlPlaneStatus {
    const members = new Map<number, number>();
    for (const vni of this.served) members.set(vni, this.stateOf(vni).members.size);
    return {
      origin: 'evpn',
      up: this.up,
      members,
      watchRestarts: this.watchRestarts,
      macMoves: this.counters.macMoves,
      skipped: { ...this.skipped },
      lastError: this.up ? undefined : this.lastError,
      announced: this.counters.announced,
    };
  }

  /** The state of a VNI as the sink gets it (also for display). */
  stateOf(vni: number): VniState {
    const members = new Set<string>();
    const byMac = new Map<string, MacIpRoute[]>();
    for (const route of this.rib.values()) {
      if (route.vni !== vni) continue;
      if (route.kind === 'imet') members.add(route.vtep);
      else byMac.set(route.mac, [...(byMac.get(route.mac) ?? []), route]);
    }
    const macs = new Map<string, RemoteMac>();
    for (const [mac, routes] of byMac) {
      const winner = routes.reduce((best, r) => (r.seq > best.seq || (r.seq === best.seq && compareAddresses(r.vtep, best.vtep) < 0) ? r : best));
      const ips = [...new Set(routes.filter((r) => r.vtep === winner.vtep && r.ip !== undefined).map((r) => r.ip as string))].sort();
      macs.set(mac, { mac, vtep: winner.vtep, ips, seq: winner.seq });
    }
    return { members, macs };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.retryTimer !== undefined) this.clearTimer(this.retryTimer);
    if (this.settleTimer !== undefined) this.clearTimer(this.settleTimer);
    const rpc = this.rpc;
    this.rpc = undefined;
    if (!rpc) return;
    if (this.up) {
      const withdrawals = Promise.allSettled([...this.own.values()].map((path) => rpc.deletePath(path)));
      const timeout = new Promise((resolve) => {
        const timer = this.setTimer(() => resolve(undefined), this.options.stopTimeoutMs ?? 2_000);
        timer.unref?.();
      });
      await Promise.race([withdrawals, timeout]);
    }
    rpc.close();
  }

  // ------------------------------------------------------------ sessions

  private connect(): void {
    if (this.stopped) return;
    const rpc = this.options.connect();
    this.rpc = rpc;
    let ready = false;
    const queued: ApiPath[][] = [];
    rpc.watch(
      (paths) => {
        if (this.rpc !== rpc) return;
        if (ready) this.importPaths(paths);
        else queued.push(paths);
      },
      (error) => this.sessionFailed(rpc, error),
    );
    void (async () => {
      try {
        // Paths announced from now on go out as they come (announce() sends on any session).
        for (const path of [...this.own.values()]) await rpc.addPath(path);
        const listed = await rpc.listPaths();
        if (this.rpc !== rpc) return;
        await this.withdrawStale(rpc, listed);
        if (this.rpc !== rpc) return;
        this.rib = new Map();
        this.importPaths(listed, false);
        for (const paths of queued) this.importPaths(paths, false);
        ready = true;
        for (const vni of this.served) this.markDirty(vni);
        this.sessionUp();
      } catch (error) {
        this.sessionFailed(rpc, error);
      }
    })();
  }

  /**
   * This host's paths in gobgpd that it no longer announces: left by an earlier
   * tsvtep that did not stop cleanly (gobgpd keeps API paths until deleted), or
   * withdrawn while gobgpd did not answer. Deleted, so the fabric forgets them.
   */
  private async withdrawStale(rpc: EvpnRib, listed: ApiPath[]): Promise<void> {
    const { codec, originator } = this.options;
    const wanted = new Set<string>();
    for (const path of this.own.values()) {
      const route = decodePath(codec, path);
      if (route.kind !== 'skip') wanted.add(routeKey(route));
    }
    for (const path of listed) {
      if (!isLocalPath(path)) continue;
      const route = decodePath(codec, path);
      if (route.kind === 'skip' || route.vtep !== originator.vtep || wanted.has(routeKey(route))) continue;
      await rpc.deletePath({ family: path.family ?? undefined, nlri: path.nlri, pattrs: path.pattrs });
    }
  }

  private sessionUp(): void {
    this.up = true;
    this.failures = 0;
    this.lastError = undefined;
    if (!this.everUp || this.outageLogged) {
      this.options.log.info(
        { api: this.options.api, routes: this.rib.size, announced: this.own.size },
        `EVPN: gobgpd at ${this.options.api} ${this.everUp ? 'is back' : 'connected'}: ${this.own.size} route(s) announced, ${this.rib.size} imported`,
      );
    }
    this.everUp = true;
    this.outageLogged = false;
  }

  private sessionFailed(rpc: EvpnRib, error: unknown): void {
    if (this.rpc !== rpc || this.stopped) return;
    this.rpc = undefined;
    rpc.close();
    const wasUp = this.up;
    this.up = false;
    this.lastError = describeGrpcError(error);
    if (!this.outageLogged) {
      this.outageLogged = true;
      const hint = this.everUp ? '' : ' (is gobgpd running? Debian: apt-get install gobgpd; --evpn names its API address)';
      this.options.log.warn(
        { api: this.options.api, err: this.lastError },
        `EVPN: gobgpd at ${this.options.api} ${wasUp ? 'lost' : 'unreachable'}: ${this.lastError}${hint}; forwarding with the last state, retrying`,
      );
    }
    const backoff = this.options.backoffMs ?? { first: 500, max: 10_000 };
    const delay = Math.min(backoff.max, backoff.first * 2 ** Math.min(this.failures, 16));
    this.failures++;
    this.watchRestarts++;
    const timer = this.setTimer(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delay);
    timer.unref?.();
    this.retryTimer = timer;
  }

  // ------------------------------------------------------------ import

  private importPaths(paths: ApiPath[], notify = true): void {
    const maxRoutes = this.options.maxRoutes ?? 100_000;
    for (const path of paths) {
      if (isLocalPath(path)) continue;
      const route = decodePath(this.options.codec, path);
      if (route.kind === 'skip') {
        this.skip(route.reason);
        continue;
      }
      if (route.vtep === this.options.originator.vtep) continue;
      const key = routeKey(route);
      if (path.isWithdraw) {
        if (this.rib.delete(key)) this.markDirty(route.vni, notify);
        continue;
      }
      if (!this.rib.has(key) && this.rib.size >= maxRoutes) {
        this.skip('over_limit');
        continue;
      }
      this.rib.set(key, route);
      this.counters.routesImported++;
      this.markDirty(route.vni, notify);
    }
  }

  private skip(reason: string): void {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + 1;
  }

  private markDirty(vni: number, notify = true): void {
    if (!this.served.has(vni)) return;
    this.dirty.add(vni);
    if (!notify || this.settleTimer !== undefined) return;
    const timer = this.setTimer(() => {
      this.settleTimer = undefined;
      this.flush();
    }, this.options.settleMs ?? 20);
    timer.unref?.();
    this.settleTimer = timer;
  }

  private flush(): void {
    const vnis = [...this.dirty];
    this.dirty.clear();
    for (const vni of vnis) {
      if (!this.served.has(vni)) continue;
      const state = this.stateOf(vni);
      this.countMoves(vni, state);
      this.releaseMovedMacs(vni, state);
      this.sink?.replace(vni, state);
    }
  }

  /** A local MAC another VTEP now announces with a higher sequence number moved there: stop announcing it. */
  private releaseMovedMacs(vni: number, state: VniState): void {
    for (const [mac, local] of this.localMacs.get(vni) ?? []) {
      const remote = state.macs.get(mac);
      if (remote === undefined || remote.seq <= local.seq) continue;
      this.withdrawMac(vni, mac);
      this.onMacLost(vni, mac);
    }
  }

  private countMoves(vni: number, state: VniState): void {
    const before = this.resolved.get(vni) ?? new Map<string, string>();
    const after = new Map<string, string>();
    for (const [mac, entry] of state.macs) {
      const was = before.get(mac);
      if (was !== undefined && was !== entry.vtep) this.counters.macMoves++;
      after.set(mac, entry.vtep);
    }
    this.resolved.set(vni, after);
  }

  // ------------------------------------------------------------ announcements

  private announce(key: string, path: ApiPath): void {
    this.own.set(key, path);
    this.counters.announced = this.own.size;
    const rpc = this.rpc;
    if (rpc) rpc.addPath(path).catch((error: unknown) => this.sessionFailed(rpc, error));
  }

  private unannounce(key: string): void {
    const path = this.own.get(key);
    if (!path) return;
    this.own.delete(key);
    this.counters.announced = this.own.size;
    const rpc = this.rpc;
    if (rpc) rpc.deletePath(path).catch((error: unknown) => this.sessionFailed(rpc, error));
  }

  private announceLocal(vni: number, mac: string, entry: LocalMac): void {
    const { codec, originator } = this.options;
    const index = this.rdIndex.get(vni) as number;
    for (const ip of [undefined, ...entry.ips]) {
      const key = ownMacKey(vni, mac, ip);
      if (this.own.has(key)) continue;
      this.announce(key, macIpPath(codec, originator, vni, index, mac, ip, entry.seq));
    }
  }

  private ownMacKeys(vni: number, mac: string): string[] {
    const prefix = ownMacKey(vni, mac, '');
    return [...this.own.keys()].filter((key) => key === prefix || key.startsWith(prefix));
  }

  private wantedMacKeys(vni: number, mac: string, entry: LocalMac): Set<string> {
    return new Set([undefined, ...entry.ips].map((ip) => ownMacKey(vni, mac, ip)));
  }

  /** The sequence number other VTEPs announce mac with, or -1 if none does. */
  private remoteSeq(vni: number, mac: string): number {
    let seq = -1;
    for (const route of this.rib.values()) if (route.kind === 'macip' && route.vni === vni && route.mac === mac) seq = Math.max(seq, route.seq);
    return seq;
  }

  private freeRdIndex(): number {
    const used = new Set(this.rdIndex.values());
    let index = 1;
    while (used.has(index)) index++;
    return index;
  }
}

function imetKey(vni: number): string {
  return `3|${vni}`;
}

function ownMacKey(vni: number, mac: string, ip: string | undefined): string {
  return `2|${vni}|${mac}|${ip ?? ''}`;
}

/** Numeric order of two canonical addresses of one family; IPv4 before IPv6. */
function compareAddresses(a: string, b: string): number {
  const v4 = (s: string) => (s.includes(':') ? undefined : s.split('.').reduce((n, octet) => n * 256 + Number(octet), 0));
  const x = v4(a);
  const y = v4(b);
  if (x !== undefined && y !== undefined) return x - y;
  if (x !== undefined) return -1;
  if (y !== undefined) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
