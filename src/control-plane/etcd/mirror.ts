// What this daemon believes of the etcd prefix: the records of the VNIs it
// serves, and nothing else. Filled from a snapshot, then kept current by
// watch events; every key passes keys.ts first. Its size is bounded per VNI,
// so a prefix stuffed with 100 000 keys costs counters, not memory.

import { parseRecord, SKIP_REASONS, type MacRecord, type SkipReason } from './keys';
import type { RemoteMac, VniState } from '../source';

export const MAX_MEMBERS_PER_VNI = 4096;
export const MAX_MACS_PER_VNI = 16_384;

interface VniRecords {
  /** member key -> VTEP address */
  members: Map<string, string>;
  /** mac key -> record */
  macs: Map<string, MacRecord>;
}

/**
 * MAC mobility (RFC 7432 section 15): the higher sequence number wins; on a
 * tie, the lower VTEP address, as EVPN breaks ties, so that every host picks
 * the same one.
 */
export function beats(seq: number, vtep: string, otherSeq: number, otherVtep: string): boolean {
  return seq > otherSeq || (seq === otherSeq && vtep < otherVtep);
}

export class EtcdMirror {
  private readonly vnis = new Map<number, VniRecords>();
  private served = new Set<number>();
  readonly skipped: Record<SkipReason, number> = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
  /** VNIs whose state changed since the last takeDirty(). */
  private readonly dirty = new Set<number>();

  constructor(
    private readonly prefix: string,
    /** Our own VTEP address: our records are not imported. */
    private readonly self: string,
    /** Told the first time a reason is seen (logging once per reason). */
    private readonly onFirstSkip: (reason: SkipReason, key: string) => void = () => undefined,
  ) {}

  /** The VNIs to import; records of other VNIs are dropped. */
  serve(vnis: Iterable<number>): void {
    this.served = new Set(vnis);
    for (const vni of this.vnis.keys()) {
      if (!this.served.has(vni)) {
        this.vnis.delete(vni);
        this.dirty.add(vni);
      }
    }
    for (const vni of this.served) if (!this.vnis.has(vni)) this.vnis.set(vni, { members: new Map(), macs: new Map() });
  }

  /** Forgets everything before a snapshot is loaded; every VNI is dirty after it. */
  clear(): void {
    for (const [vni, records] of this.vnis) {
      records.members.clear();
      records.macs.clear();
      this.dirty.add(vni);
    }
  }

  put(key: string, value: Buffer): void {
    const record = parseRecord(this.prefix, key, value);
    if (record.kind === 'skip') return this.skip(record.reason, key);
    if (record.kind === 'foreign') return;
    const records = this.vnis.get(record.vni);
    if (!records || record.vtep === this.self) return;
    if (record.kind === 'member') {
      if (records.members.get(key) === record.vtep) return;
      if (!records.members.has(key) && records.members.size >= MAX_MEMBERS_PER_VNI) return this.skip('over_limit', key);
      records.members.set(key, record.vtep);
    } else {
      if (!records.macs.has(key) && records.macs.size >= MAX_MACS_PER_VNI) return this.skip('over_limit', key);
      records.macs.set(key, record);
    }
    this.dirty.add(record.vni);
  }

  delete(key: string): void {
    const record = parseRecord(this.prefix, key, undefined);
    if (record.kind !== 'member' && record.kind !== 'mac') return;
    const records = this.vnis.get(record.vni);
    if (!records) return;
    const removed = record.kind === 'member' ? records.members.delete(key) : records.macs.delete(key);
    if (removed) this.dirty.add(record.vni);
  }

  /** Marks vni changed (our own announcements changed what it resolves to). */
  touch(vni: number): void {
    this.dirty.add(vni);
  }

  takeDirty(): number[] {
    const out = [...this.dirty].filter((vni) => this.served.has(vni));
    this.dirty.clear();
    return out;
  }

  memberCount(vni: number): number {
    return this.vnis.get(vni)?.members.size ?? 0;
  }

  /** The state of vni for the sink: members, and each MAC behind the VTEP with the highest sequence number. */
  state(vni: number): VniState {
    const records = this.vnis.get(vni);
    if (!records) return { members: new Set(), macs: new Map() };
    const members = new Set(records.members.values());
    const best = new Map<string, MacRecord>();
    for (const record of records.macs.values()) {
      // A MAC is believed only behind a VTEP that is a member.
      if (!members.has(record.vtep)) continue;
      const current = best.get(record.mac);
      if (!current || beats(record.seq, record.vtep, current.seq, current.vtep)) best.set(record.mac, record);
    }
    const macs = new Map<string, RemoteMac>();
    for (const [mac, record] of best) macs.set(mac, { mac, vtep: record.vtep, ips: record.ips, seq: record.seq });
    return { members, macs };
  }

  /** The remote record that holds mac in vni now (highest sequence number), if any. */
  holder(vni: number, mac: string): { vtep: string; seq: number } | undefined {
    let best: MacRecord | undefined;
    for (const record of this.vnis.get(vni)?.macs.values() ?? []) {
      if (record.mac === mac && (!best || beats(record.seq, record.vtep, best.seq, best.vtep))) best = record;
    }
    return best;
  }

  private skip(reason: SkipReason, key: string): void {
    if (this.skipped[reason]++ === 0) this.onFirstSkip(reason, key);
  }
}
