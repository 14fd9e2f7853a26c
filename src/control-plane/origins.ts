// Who wants each peer: the command line or file (static), a control-plane
// source, or both. A peer stays while anyone wants it, so an etcd member that
// is also a --peer survives leaving etcd, and `peer del` of a static peer
// that etcd also lists keeps it as an etcd member.

import type { Origin } from './source';

export class PeerOrigins {
  private readonly byVni = new Map<number, Map<string, Set<Origin>>>();

  /** Records that origin wants address (canonical) as a peer of vni. */
  add(vni: number, address: string, origin: Origin): void {
    let peers = this.byVni.get(vni);
    if (!peers) this.byVni.set(vni, (peers = new Map()));
    let origins = peers.get(address);
    if (!origins) peers.set(address, (origins = new Set()));
    origins.add(origin);
  }

  /** Takes origin off; returns how many origins still want the peer. */
  remove(vni: number, address: string, origin: Origin): number {
    const origins = this.byVni.get(vni)?.get(address);
    if (!origins) return 0;
    origins.delete(origin);
    if (origins.size === 0) this.byVni.get(vni)?.delete(address);
    return origins.size;
  }

  of(vni: number, address: string): Origin[] {
    return [...(this.byVni.get(vni)?.get(address) ?? [])].sort();
  }

  forgetNetwork(vni: number): void {
    this.byVni.delete(vni);
  }
}
