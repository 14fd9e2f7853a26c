// The MACs behind this host's TAPs (the local containers), for a control-plane
// source to announce, read from where the kernel already keeps them: the
// bridge's FDB (entries learned on its other ports) and, for IPs, the
// bridge's neighbour table (filled when the bridge has an address, as
// Docker's bridges do). This is what FRR's zebra does for kernel VTEPs, and it
// leaves the data path alone. The bridge's ageing decides when a silent
// container is gone (`ip link set BR type bridge ageing_time` in centiseconds).
//
// The watcher polls every few seconds and tells the source the difference,
// and which VNIs the daemon serves now (networks added or removed by reload or
// the control interface).

import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { canonicalAddress } from '../core/address';
import { parseMac } from '../core/ethernet';

const run = promisify(execFile);

export interface BridgeFdbEntry {
  mac: string;
  ifname?: string;
  master?: string;
  state?: string;
  flags?: string[];
}

export interface NeighbourEntry {
  dst?: string;
  lladdr?: string;
  state?: string[];
}

/** Unicast MACs the bridge learned on its ports other than tap: the containers. */
export function localMacsOf(entries: BridgeFdbEntry[], bridge: string, tap: string): Set<string> {
  const macs = new Set<string>();
  for (const entry of entries) {
    if (entry.master !== bridge || entry.ifname === tap || entry.state === 'permanent') continue;
    if ((entry.flags ?? []).some((flag) => flag === 'self' || flag === 'extern_learn')) continue;
    const parsed = parseMac(entry.mac);
    if (!parsed || (parseInt(entry.mac.slice(0, 2), 16) & 1) !== 0) continue;
    macs.add(entry.mac.toLowerCase());
  }
  return macs;
}

/** MAC -> the IPs the neighbour table has for it (resolved entries only). */
export function ipsByMac(entries: NeighbourEntry[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const entry of entries) {
    if (!entry.lladdr || !entry.dst || isIP(entry.dst) === 0) continue;
    if ((entry.state ?? []).some((s) => s === 'FAILED' || s === 'INCOMPLETE')) continue;
    const mac = entry.lladdr.toLowerCase();
    out.set(mac, [...(out.get(mac) ?? []), canonicalAddress(entry.dst)]);
  }
  return out;
}

/** What the watcher tells (an EVPN or etcd source). */
export interface LocalMacListener {
  serve(vnis: readonly number[]): void;
  announceMac(vni: number, mac: string, ips: readonly string[]): void;
  withdrawMac(vni: number, mac: string): void;
}

export interface WatchedBridge {
  vni: number;
  bridge: string;
  tap: string;
}

export interface LocalMacWatchOptions {
  /** The daemon's networks now. */
  networks: () => WatchedBridge[];
  listener: LocalMacListener;
  intervalMs?: number;
  log: { warn(fields: object, message: string): void };
  /** Reads a bridge's FDB and neighbours (iproute2 by default; a fake in tests). */
  read?: (bridge: string) => Promise<{ fdb: BridgeFdbEntry[]; neighbours: NeighbourEntry[] }>;
}

export class LocalMacWatch {
  /** Per VNI, MAC -> the IPs announced with it (sorted, joined). */
  private readonly announced = new Map<number, Map<string, string>>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly failing = new Set<string>();

  constructor(private readonly options: LocalMacWatchOptions) {}

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.options.intervalMs ?? 2_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round: serve the current VNIs, announce new MACs, withdraw gone ones. Rounds never overlap. */
  poll(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.round().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async round(): Promise<void> {
    const networks = this.options.networks();
    const { listener } = this.options;
    listener.serve(networks.map((n) => n.vni));
    for (const vni of [...this.announced.keys()]) if (!networks.some((n) => n.vni === vni)) this.announced.delete(vni);
    const read = this.options.read ?? readBridge;
    for (const network of networks) {
      let tables: Awaited<ReturnType<typeof read>>;
      try {
        tables = await read(network.bridge);
        this.failing.delete(network.bridge);
      } catch (error) {
        if (!this.failing.has(network.bridge)) {
          this.failing.add(network.bridge);
          this.options.log.warn({ vni: network.vni, bridge: network.bridge }, `VNI ${network.vni}: cannot read the FDB of ${network.bridge}: ${(error as Error).message} (local MACs not announced until it works)`);
        }
        continue;
      }
      const macs = localMacsOf(tables.fdb, network.bridge, network.tap);
      const ips = ipsByMac(tables.neighbours);
      const before = this.announced.get(network.vni) ?? new Map<string, string>();
      const after = new Map<string, string>();
      for (const mac of macs) {
        const macIps = [...new Set(ips.get(mac) ?? [])].sort();
        const signature = macIps.join(',');
        after.set(mac, signature);
        if (before.get(mac) !== signature) listener.announceMac(network.vni, mac, macIps);
      }
      for (const mac of before.keys()) if (!after.has(mac)) listener.withdrawMac(network.vni, mac);
      this.announced.set(network.vni, after);
    }
  }
}

async function readBridge(bridge: string): Promise<{ fdb: BridgeFdbEntry[]; neighbours: NeighbourEntry[] }> {
  const [fdb, neighbours] = await Promise.all([
    run('bridge', ['-j', 'fdb', 'show', 'br', bridge], { timeout: 10_000 }),
    run('ip', ['-j', 'neigh', 'show', 'dev', bridge], { timeout: 10_000 }),
  ]);
  return { fdb: JSON.parse(fdb.stdout || '[]') as BridgeFdbEntry[], neighbours: JSON.parse(neighbours.stdout || '[]') as NeighbourEntry[] };
}
