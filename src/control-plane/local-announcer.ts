// This host's side of MAC/IP distribution: gives each network a TapObserver
// (local MACs noted on the data path, ARP/ND answered there with
// --suppress-arp), and twice a second, off the data path, hands what changed
// to the control-plane source: new MACs and IPs to announce, aged ones to
// withdraw.

import { recordAddress } from '../core/address';
import { NeighbourSuppressor, TapObserver, type NeighbourBinding } from '../core/arp-suppress';
import type { Clock } from '../core/clock';
import { formatMac, parseMac } from '../core/ethernet';
import { LocalMacs, type LocalMac } from '../core/local-macs';
import type { Network } from '../core/network';
import type { ControlPlaneSource } from './source';

const ANNOUNCE_EVERY_MS = 500;
/** Local MACs per VNI at most; more are counted (LocalMacs.full), not announced. */
const MAX_LOCAL_MACS = 4096;

export interface AnnouncerOptions {
  /** Publish local MACs and IPs (--etcd-fdb). */
  fdb: boolean;
  /** Answer ARP/ND from the control plane's bindings (--suppress-arp). */
  suppressArp: boolean;
  clock: Clock;
}

export class LocalAnnouncer {
  private readonly observed = new Map<number, { network: Network; observer: TapObserver }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly source: ControlPlaneSource,
    private readonly options: AnnouncerOptions,
  ) {}

  /** Gives networks new since the last call an observer; forgets those gone. */
  networksChanged(networks: Network[]): void {
    const live = new Set(networks.map((n) => n.vni));
    for (const vni of this.observed.keys()) if (!live.has(vni)) this.observed.delete(vni);
    for (const network of networks) {
      const known = this.observed.get(network.vni);
      if (known?.network === network) continue;
      const observer = new TapObserver(
        network.port,
        this.options.fdb ? new LocalMacs(MAX_LOCAL_MACS, this.options.clock) : undefined,
        this.options.suppressArp ? new NeighbourSuppressor() : undefined,
      );
      network.tapObserver = observer;
      this.observed.set(network.vni, { network, observer });
    }
    if (this.options.fdb && this.timer === undefined) {
      this.timer = setInterval(() => this.announce(), ANNOUNCE_EVERY_MS);
      this.timer.unref();
    }
  }

  /** The bindings ARP/ND suppression answers from in vni. */
  setNeighbours(vni: number, bindings: readonly NeighbourBinding[]): void {
    this.observed.get(vni)?.observer.suppressor?.replace(bindings);
  }

  /** A MAC of ours moved to another host: forget it, so that seeing it here again announces it again. */
  macLost(vni: number, mac: string): void {
    const parsed = parseMac(mac);
    if (parsed) this.observed.get(vni)?.observer.localMacs?.forget(parsed.high, parsed.low);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private announce(): void {
    for (const { network, observer } of this.observed.values()) {
      const macs = observer.localMacs;
      if (!macs) continue;
      macs.tick();
      for (const entry of macs.changes()) this.source.announceMac(network.vni, formatMac(entry.macHigh, entry.macLow), ipsOf(entry));
      for (const entry of macs.ageOut(network.fdb.ageingMs)) this.source.withdrawMac(network.vni, formatMac(entry.macHigh, entry.macLow));
    }
  }
}

function ipsOf(entry: LocalMac): string[] {
  const ips: string[] = [];
  if (entry.ipv4 !== undefined) ips.push([entry.ipv4 >>> 24, (entry.ipv4 >>> 16) & 0xff, (entry.ipv4 >>> 8) & 0xff, entry.ipv4 & 0xff].join('.'));
  if (entry.ipv6 !== undefined) ips.push(recordAddress(entry.ipv6, 0));
  return ips;
}
