// The remotes a VNI accepted with --learn-remotes: addresses that are not
// configured peers but sent us VXLAN. They are bounded (--max-remotes, per
// VNI; beyond it a new sender's datagrams are dropped as remotes_full) and
// age: one that no FDB entry of the VNI points at and that sent nothing for
// the ageing time is forgotten, so spoofed sources cannot grow memory or
// metric series without bound.
//
// Activity is read from the remote's receive counter at housekeeping, so the
// data path pays no clock read for it.

import type { NetworkCounters } from './counters';
import { NO_REMOTE, type Fdb } from './fdb';
import type { RemoteTable } from './remotes';

export const DEFAULT_MAX_REMOTES = 1_024;

interface Activity {
  /** The remote's rxDatagrams at the last housekeeping. */
  rx: number;
  /** When rx was last seen to change (NaN until the first housekeeping). */
  activeAt: number;
}

export class LearnedRemotes {
  private readonly activity = new Map<number, Activity>();

  constructor(
    /** At most this many; may change at runtime (a lower limit removes none, it admits no more). */
    public limit = DEFAULT_MAX_REMOTES,
  ) {}

  get size(): number {
    return this.activity.size;
  }

  has(remoteId: number): boolean {
    return this.activity.has(remoteId);
  }

  ids(): number[] {
    return [...this.activity.keys()];
  }

  /**
   * The id of the remote whose address is records[offset..+16] (found as
   * remoteId, or NO_REMOTE if the table has none), admitted to this VNI and
   * created if new; NO_REMOTE, counted as remotes_full, if the VNI is at its limit.
   */
  admit(remoteId: number, remotes: RemoteTable, records: Buffer, offset: number, counters: NetworkCounters): number {
    if (remoteId !== NO_REMOTE && this.activity.has(remoteId)) return remoteId;
    if (this.activity.size >= this.limit) {
      counters.drops.remotes_full++;
      return NO_REMOTE;
    }
    const id = remoteId !== NO_REMOTE ? remoteId : remotes.addFromRecord(records, offset, true).id;
    this.activity.set(id, { rx: -1, activeAt: NaN });
    return id;
  }

  /**
   * Forgets the remotes that no entry of fdb points at and that received
   * nothing for idleMs; returns how many. Call after fdb.ageOut().
   */
  expire(now: number, idleMs: number, fdb: Fdb, remotes: RemoteTable): number {
    if (this.activity.size === 0) return 0;
    const inUse = new Set<number>();
    fdb.remotesInUse(inUse);
    let removed = 0;
    for (const [id, seen] of this.activity) {
      const remote = remotes.get(id);
      const rx = remote ? remote.counters.rxDatagrams : -1;
      if (rx !== seen.rx || Number.isNaN(seen.activeAt)) {
        seen.rx = rx;
        seen.activeAt = now;
      }
      if (remote === undefined || (!inUse.has(id) && now - seen.activeAt >= idleMs)) {
        this.activity.delete(id);
        removed++;
      }
    }
    return removed;
  }
}

/** Removes the learned remotes that no network holds any more (as a peer or a learned remote). */
export function forgetUnusedLearned(remotes: RemoteTable, networks: Iterable<{ isPeer(id: number): boolean; learnedRemotes: LearnedRemotes }>): number {
  const all = [...networks];
  return remotes.removeLearned((id) => all.some((network) => network.learnedRemotes.has(id) || network.isPeer(id)));
}
