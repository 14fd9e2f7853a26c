// The daemon's side of a control-plane source, members and MACs: turns "the
// state of VNI v is now S" into the few runtime changes (peer added or removed,
// remote MAC entry put or removed) that take the data plane from what was
// applied before to S. Members are applied before the MACs behind them, and
// MACs are removed before their members. Nothing here runs per packet.
//
// Issue 14's ControlPlaneApplier (src/control-plane/apply.ts) does the member
// half the same way; this one adds the MACs.

import { EMPTY_VNI_STATE, type ControlPlaneSink, type DataPlaneTarget, type Origin, type VniState } from './contract';

export interface ApplierLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export class StateApplier implements ControlPlaneSink {
  /** Per VNI, the members this applier made peers. */
  private readonly members = new Map<number, Set<string>>();
  /** Per VNI, MAC -> VTEP this applier installed. */
  private readonly macs = new Map<number, Map<string, string>>();
  /** Addresses refused once (said once, not on every resync). */
  private readonly refused = new Set<string>();

  constructor(
    private readonly target: DataPlaneTarget,
    private readonly origin: Exclude<Origin, 'static'>,
    private readonly log: ApplierLog,
  ) {}

  replace(vni: number, state: VniState = EMPTY_VNI_STATE): void {
    if (!this.target.hasNetwork(vni)) {
      this.members.delete(vni);
      this.macs.delete(vni);
      this.target.forgetNetwork(vni);
      return;
    }
    const beforeMembers = this.members.get(vni) ?? new Set<string>();
    const beforeMacs = this.macs.get(vni) ?? new Map<string, string>();
    const afterMembers = new Set<string>();
    const afterMacs = new Map<string, string>();
    const added: string[] = [];
    const removed: string[] = [];

    for (const address of state.members) {
      if (beforeMembers.has(address)) {
        afterMembers.add(address);
        continue;
      }
      try {
        this.target.addPeer(vni, address, this.origin);
        afterMembers.add(address);
        added.push(address);
      } catch (error) {
        this.refuse(vni, address, error);
      }
    }
    for (const [mac, before] of beforeMacs) {
      const wanted = state.macs.get(mac);
      if (wanted?.vtep === before && afterMembers.has(before)) {
        afterMacs.set(mac, before);
        continue;
      }
      if (wanted === undefined || !afterMembers.has(wanted.vtep)) this.target.removeRemoteMac(vni, mac, this.origin);
    }
    for (const [mac, entry] of state.macs) {
      if (afterMacs.has(mac) || !afterMembers.has(entry.vtep)) continue; // a MAC behind a non-member waits for its type-3
      try {
        this.target.putRemoteMac(vni, mac, entry.vtep, this.origin);
        afterMacs.set(mac, entry.vtep);
      } catch (error) {
        this.refuse(vni, `${mac} -> ${entry.vtep}`, error);
      }
    }
    for (const address of beforeMembers) {
      if (afterMembers.has(address)) continue;
      this.target.removePeer(vni, address, this.origin);
      removed.push(address);
    }
    this.members.set(vni, afterMembers);
    this.macs.set(vni, afterMacs);
    if (added.length + removed.length > 0) {
      this.log.info(
        { vni, origin: this.origin, members: afterMembers.size, added: added.slice(0, 16), removed: removed.slice(0, 16) },
        `VNI ${vni}: ${afterMembers.size} ${this.origin} member(s)${describe('+', added)}${describe('-', removed)}`,
      );
    }
  }

  /** Members this applier made peers of vni. */
  membersOf(vni: number): ReadonlySet<string> {
    return this.members.get(vni) ?? new Set();
  }

  /** MAC -> VTEP entries this applier installed in vni. */
  macsOf(vni: number): ReadonlyMap<string, string> {
    return this.macs.get(vni) ?? new Map();
  }

  private refuse(vni: number, what: string, error: unknown): void {
    const key = `${vni}/${what}`;
    if (this.refused.has(key)) return;
    this.refused.add(key);
    this.log.warn({ vni, origin: this.origin, refused: what }, `VNI ${vni}: ${this.origin} ${what} refused: ${(error as Error).message}`);
  }
}

/** ' +10.0.1.41 10.0.1.42' (the first few), or '' for none. */
function describe(sign: string, addresses: string[]): string {
  if (addresses.length === 0) return '';
  const shown = addresses.slice(0, 4).join(' ');
  return ` ${sign}${shown}${addresses.length > 4 ? ` and ${addresses.length - 4} more` : ''}`;
}
