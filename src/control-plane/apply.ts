// The daemon's side of a control-plane source: turns "the state of VNI v is
// now S" into the few runtime changes (peer added, peer removed) that take the
// data plane from what was applied before to S. Changes go through the
// daemon's runtime API, with the source as their origin, so static peers and
// the members of another source are left alone. Nothing here runs per packet.

import { EMPTY_VNI_STATE, type ControlPlaneSink, type Origin, type VniState } from './source';

/** The daemon's runtime API, as the applier uses it (the daemon, or a test's stand-in). */
export interface DataPlaneTarget {
  /** Adds origin to the peer of vni at address (canonical). Throws for an address this host refuses. */
  addPeer(vni: number, address: string, origin: Origin): unknown;
  /** Takes origin off that peer; the peer goes, with its learned entries, once no origin is left. */
  removePeer(vni: number, address: string, origin: Origin): unknown;
  /** Whether the daemon runs vni (a source may lag behind a network just removed). */
  hasNetwork(vni: number): boolean;
}

export interface ApplierLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export class ControlPlaneApplier implements ControlPlaneSink {
  /** Per VNI, the members this applier made peers. */
  private readonly applied = new Map<number, Set<string>>();
  /** Addresses refused once (say so once, not on every resync). */
  private readonly refused = new Set<string>();

  constructor(
    private readonly target: DataPlaneTarget,
    private readonly origin: Exclude<Origin, 'static'>,
    private readonly log: ApplierLog,
  ) {}

  replace(vni: number, state: VniState = EMPTY_VNI_STATE): void {
    if (!this.target.hasNetwork(vni)) {
      this.applied.delete(vni);
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
    if (added.length + removed.length > 0) {
      this.log.info(
        { vni, origin: this.origin, members: after.size, added: added.slice(0, 16), removed: removed.slice(0, 16) },
        `VNI ${vni}: ${after.size} ${this.origin} member(s)${describe('+', added)}${describe('-', removed)}`,
      );
    }
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
