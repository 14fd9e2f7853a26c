// The daemon's side of a control-plane source: turns "the state of VNI v is
// now S" into the few runtime changes (peer added, peer removed) that take the
// data plane from what was applied before to S. Changes go through the
// daemon's runtime API, with the source as their origin, so static peers and
// the members of another source are left alone. Nothing here runs per packet.

import type { NeighbourBinding } from '../core/arp-suppress';
import { EMPTY_VNI_STATE, type ControlPlaneSink, type Origin, type RemoteMac, type VniState } from './source';

/** The daemon's runtime API, as the applier uses it (the daemon, or a test's stand-in). */
export interface DataPlaneTarget {
  /** Adds origin to the peer of vni at address (canonical). Throws for an address this host refuses. */
  addPeer(vni: number, address: string, origin: Origin): unknown;
  /** Takes origin off that peer; the peer goes, with its learned entries, once no origin is left. */
  removePeer(vni: number, address: string, origin: Origin): unknown;
  /** Whether the daemon runs vni (a source may lag behind a network just removed). */
  hasNetwork(vni: number): boolean;
  /** Points mac at the VTEP (a peer) for good: no ageing, learning does not move it. A static entry of the user wins. */
  putRemoteMac(vni: number, mac: string, vtep: string, origin: Origin): unknown;
  removeRemoteMac(vni: number, mac: string, origin: Origin): unknown;
  /** The IP -> MAC bindings ARP/ND suppression answers from (remote MACs only). */
  setNeighbours(vni: number, bindings: readonly NeighbourBinding[]): void;
}

export interface ApplierLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export class ControlPlaneApplier implements ControlPlaneSink {
  /** Per VNI, the members this applier made peers. */
  private readonly applied = new Map<number, Set<string>>();
  /** Per VNI, the MAC entries this applier installed. */
  private readonly appliedMacs = new Map<number, Map<string, RemoteMac>>();
  /** Addresses refused once (say so once, not on every resync). */
  private readonly refused = new Set<string>();
  /** MACs that moved from one VTEP to another (MAC mobility), since start. */
  macMoves = 0;

  constructor(
    private readonly target: DataPlaneTarget,
    private readonly origin: Exclude<Origin, 'static'>,
    private readonly log: ApplierLog,
  ) {}

  replace(vni: number, state: VniState = EMPTY_VNI_STATE): void {
    if (!this.target.hasNetwork(vni)) {
      this.applied.delete(vni);
      this.appliedMacs.delete(vni);
      return;
    }
    const before = this.applied.get(vni) ?? new Set<string>();
    const after = new Set<string>();
    const added: string[] = [];
    const removed: string[] = [];
    for (const address of before) {
      if (state.members.has(address)) {
        after.add(address);
        continue;
      }
      this.target.removePeer(vni, address, this.origin);
      removed.push(address);
    }
    for (const address of state.members) {
      if (before.has(address)) continue;
      try {
        this.target.addPeer(vni, address, this.origin);
        after.add(address);
        added.push(address);
      } catch (error) {
        const key = `${vni}/${address}`;
        if (!this.refused.has(key)) {
          this.refused.add(key);
          this.log.warn({ vni, peer: address, origin: this.origin }, `VNI ${vni}: ${this.origin} member ${address} refused: ${(error as Error).message}`);
        }
      }
    }
    this.applied.set(vni, after);
    this.applyMacs(vni, state, after);
    if (added.length + removed.length > 0) {
      this.log.info(
        { vni, origin: this.origin, members: after.size, added: added.slice(0, 16), removed: removed.slice(0, 16) },
        `VNI ${vni}: ${after.size} ${this.origin} member(s)${describe('+', added)}${describe('-', removed)}`,
      );
    }
  }

  /** Installs, moves and removes remote MAC entries; only behind members that are peers now. */
  private applyMacs(vni: number, state: VniState, members: ReadonlySet<string>): void {
    const before = this.appliedMacs.get(vni) ?? new Map<string, RemoteMac>();
    const after = new Map<string, RemoteMac>();
    for (const mac of before.keys()) {
      const next = state.macs.get(mac);
      if (next === undefined || !members.has(next.vtep)) this.target.removeRemoteMac(vni, mac, this.origin);
    }
    const bindings: NeighbourBinding[] = [];
    for (const [mac, entry] of state.macs) {
      if (!members.has(entry.vtep)) continue;
      const old = before.get(mac);
      if (old === undefined || old.vtep !== entry.vtep) {
        try {
          this.target.putRemoteMac(vni, mac, entry.vtep, this.origin);
        } catch {
          continue;
        }
        if (old !== undefined) this.moved(vni, mac, old.vtep, entry);
      }
      after.set(mac, entry);
      for (const ip of entry.ips) bindings.push({ ip, mac });
    }
    this.appliedMacs.set(vni, after);
    this.target.setNeighbours(vni, bindings);
  }

  private moved(vni: number, mac: string, from: string, to: RemoteMac): void {
    if (this.macMoves++ === 0) {
      this.log.info({ vni, mac, from, to: to.vtep, seq: to.seq }, `VNI ${vni}: ${mac} moved from ${from} to ${to.vtep} (sequence ${to.seq}; further moves are counted, not logged)`);
    }
  }

  /**
   * vni is no longer served (its network was removed or restarted): forget
   * what was applied there, so that the network, if added again, gets every
   * member and MAC again.
   */
  forget(vni: number): void {
    this.applied.delete(vni);
    this.appliedMacs.delete(vni);
    for (const key of [...this.refused]) if (key.startsWith(`${vni}/`)) this.refused.delete(key);
  }

  /** Members this applier made peers of vni. */
  members(vni: number): ReadonlySet<string> {
    return this.applied.get(vni) ?? new Set();
  }
}

/** ' +10.0.1.41 10.0.1.42' (the first few), or '' for none. */
function describe(sign: string, addresses: string[]): string {
  if (addresses.length === 0) return '';
  const shown = addresses.slice(0, 4).join(' ');
  return ` ${sign}${shown}${addresses.length > 4 ? ` and ${addresses.length - 4} more` : ''}`;
}
