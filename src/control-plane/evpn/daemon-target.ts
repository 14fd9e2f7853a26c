// The daemon's runtime API as a control-plane sink uses it, with the origin of
// every peer and MAC entry kept beside it: a peer the user configured and a
// source also announces stays when the source drops it, and `tsvtep peers` /
// `fdb show` can say where each came from. Peers and entries go through the
// same calls as the control interface's (Daemon.addPeer, addStatic, ...); the
// data plane is not touched otherwise.

import { canonicalAddress } from '../../core/address';
import type { Daemon } from '../../daemon';
import type { DataPlaneTarget, Origin } from './contract';

export class DaemonTarget implements DataPlaneTarget {
  /** `${vni}|${address}` -> the origins that want the peer; absent: the peer is the user's alone. */
  private readonly peerOrigins = new Map<string, Set<Origin>>();
  /** `${vni}|${mac}` -> the origin that installed the entry. */
  private readonly macOrigins = new Map<string, Origin>();

  constructor(private readonly daemon: Pick<Daemon, 'addPeer' | 'removePeer' | 'addStatic' | 'removeStatic' | 'network'>) {}

  hasNetwork(vni: number): boolean {
    return this.daemon.network(vni) !== undefined;
  }

  forgetNetwork(vni: number): void {
    for (const key of [...this.peerOrigins.keys()]) if (key.startsWith(`${vni}|`)) this.peerOrigins.delete(key);
    for (const key of [...this.macOrigins.keys()]) if (key.startsWith(`${vni}|`)) this.macOrigins.delete(key);
  }

  addPeer(vni: number, address: string, origin: Origin): void {
    const key = `${vni}|${canonicalAddress(address)}`;
    const origins = this.peerOrigins.get(key);
    if (origins) {
      origins.add(origin);
      return;
    }
    const added = this.daemon.addPeer(vni, address);
    // A peer already there was configured by the user (or over the control interface).
    this.peerOrigins.set(key, new Set<Origin>(added ? [origin] : ['static', origin]));
  }

  removePeer(vni: number, address: string, origin: Origin): void {
    const key = `${vni}|${canonicalAddress(address)}`;
    const origins = this.peerOrigins.get(key);
    if (!origins?.delete(origin)) return;
    if (origins.size > 0 && !(origins.size === 1 && origins.has('static'))) return;
    this.peerOrigins.delete(key);
    if (origins.has('static')) return;
    this.daemon.removePeer(vni, address);
  }

  putRemoteMac(vni: number, mac: string, vtep: string, origin: Origin): void {
    this.daemon.addStatic(vni, mac, vtep);
    this.macOrigins.set(`${vni}|${mac.toLowerCase()}`, origin);
  }

  removeRemoteMac(vni: number, mac: string, origin: Origin): void {
    const key = `${vni}|${mac.toLowerCase()}`;
    if (this.macOrigins.get(key) !== origin) return;
    this.macOrigins.delete(key);
    if (this.hasNetwork(vni)) this.daemon.removeStatic(vni, mac);
  }

  /** Where the peer came from: its origins, or static alone for one no source announced. */
  peerOriginsOf(vni: number, address: string): Origin[] {
    const origins = this.peerOrigins.get(`${vni}|${canonicalAddress(address)}`);
    return origins ? [...origins].sort() : ['static'];
  }

  /** The source that installed the MAC entry, or undefined for a learned or user's static entry. */
  macOriginOf(vni: number, mac: string): Origin | undefined {
    return this.macOrigins.get(`${vni}|${mac.toLowerCase()}`);
  }
}
