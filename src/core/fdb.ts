// The forwarding database of one VNI: inner MAC address -> remote VTEP.
//
// An open-addressing hash table over typed arrays, so that lookups and
// learning allocate nothing and memory is fixed by the entry limit: a flood of
// random source MACs cannot grow it. Deletion shifts entries back instead of
// leaving tombstones, so a long-running table does not degrade.

import type { Clock } from './clock';

export const NO_REMOTE = -1;

/** What learn() did; the caller counts these. */
export const LEARN_REFRESHED = 0;
export const LEARN_NEW = 1;
export const LEARN_MOVED = 2;
/** The MAC has a static entry for another remote; static entries never move. */
export const LEARN_STATIC_KEPT = 3;
/** The table is at its limit; the MAC was not learned. */
export const LEARN_TABLE_FULL = 4;
/**
 * A stranger (a learned remote, not a configured peer) claimed a MAC that
 * lives behind a configured peer or has a static entry: the entry stays.
 */
export const LEARN_MOVE_REFUSED = 5;
/** The MAC moved less than minMoveIntervalMs ago: it stays where it is for now. */
export const LEARN_MOVE_LIMITED = 6;

export const DEFAULT_AGEING_MS = 300_000;
export const DEFAULT_MAX_ENTRIES = 16_384;
/** At most one move per MAC per second: a migrating container moves once, a loop flaps forever. */
export const DEFAULT_MIN_MOVE_INTERVAL_MS = 1_000;

export interface FdbOptions {
  ageingMs?: number;
  maxEntries?: number;
  /** A MAC that moved is not moved again sooner than this. */
  minMoveIntervalMs?: number;
  clock: Clock;
}

export interface FdbEntry {
  macHigh: number;
  macLow: number;
  remoteId: number;
  isStatic: boolean;
  /** Learned from a configured peer (or static): a stranger cannot take it. */
  trusted: boolean;
  /** Milliseconds since the MAC was last seen (0 for static entries). */
  ageMs: number;
}

const EMPTY = -1;

export class Fdb {
  /** Learned entries older than this are gone; may change at runtime. */
  ageingMs: number;
  readonly maxEntries: number;
  readonly minMoveIntervalMs: number;
  private readonly clock: Clock;
  private readonly mask: number;
  private readonly keyHigh: Int32Array;
  private readonly keyLow: Uint32Array;
  private readonly remote: Int32Array;
  private readonly lastSeen: Float64Array;
  private readonly pinned: Uint8Array;
  /** 1: learned from a configured peer, or static. */
  private readonly trusted: Uint8Array;
  private readonly movedAt: Float64Array;
  private count = 0;

  constructor(options: FdbOptions) {
    this.ageingMs = options.ageingMs ?? DEFAULT_AGEING_MS;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.minMoveIntervalMs = options.minMoveIntervalMs ?? DEFAULT_MIN_MOVE_INTERVAL_MS;
    this.clock = options.clock;
    // Keep the load factor at or under one half so probe runs stay short.
    let slots = 16;
    while (slots < this.maxEntries * 2) slots *= 2;
    this.mask = slots - 1;
    this.keyHigh = new Int32Array(slots).fill(EMPTY);
    this.keyLow = new Uint32Array(slots);
    this.remote = new Int32Array(slots);
    this.lastSeen = new Float64Array(slots);
    this.pinned = new Uint8Array(slots);
    this.trusted = new Uint8Array(slots);
    this.movedAt = new Float64Array(slots);
  }

  get size(): number {
    return this.count;
  }

  /** The remote a MAC lives behind, or NO_REMOTE if unknown or aged. */
  lookup(macHigh: number, macLow: number): number {
    const slot = this.find(macHigh, macLow);
    if (slot < 0) return NO_REMOTE;
    if (this.pinned[slot] === 0 && this.clock.now() - this.lastSeen[slot] > this.ageingMs) return NO_REMOTE;
    return this.remote[slot];
  }

  /**
   * Records that macHigh:macLow was seen behind remoteId; trusted says the
   * remote is a configured peer of this VNI (false: a remote learned with
   * --learn-remotes). Returns a LEARN_* code.
   */
  learn(macHigh: number, macLow: number, remoteId: number, trusted = true): number {
    const now = this.clock.now();
    let slot = this.home(macHigh, macLow);
    for (;;) {
      const high = this.keyHigh[slot];
      if (high === EMPTY) break;
      if (high === macHigh && this.keyLow[slot] === macLow) {
        if (this.remote[slot] === remoteId) {
          if (this.pinned[slot] === 0) this.lastSeen[slot] = now;
          return LEARN_REFRESHED;
        }
        if (!trusted && this.trusted[slot] !== 0 && (this.pinned[slot] !== 0 || now - this.lastSeen[slot] <= this.ageingMs)) {
          return LEARN_MOVE_REFUSED;
        }
        if (this.pinned[slot] !== 0) return LEARN_STATIC_KEPT;
        const aged = now - this.lastSeen[slot] > this.ageingMs;
        if (!aged && now - this.movedAt[slot] < this.minMoveIntervalMs) return LEARN_MOVE_LIMITED;
        this.lastSeen[slot] = now;
        this.remote[slot] = remoteId;
        this.trusted[slot] = trusted ? 1 : 0;
        if (aged) return LEARN_NEW; // an aged entry not swept yet: as good as gone
        this.movedAt[slot] = now;
        return LEARN_MOVED;
      }
      slot = (slot + 1) & this.mask;
    }
    if (this.count >= this.maxEntries) return LEARN_TABLE_FULL;
    this.fill(slot, macHigh, macLow, remoteId, now, 0, trusted ? 1 : 0);
    return LEARN_NEW;
  }

  /** Adds or replaces a static entry: it never ages and learning never moves it. */
  addStatic(macHigh: number, macLow: number, remoteId: number): void {
    const slot = this.find(macHigh, macLow);
    if (slot >= 0) {
      this.remote[slot] = remoteId;
      this.pinned[slot] = 1;
      this.trusted[slot] = 1;
      return;
    }
    this.fill(this.freeSlot(macHigh, macLow), macHigh, macLow, remoteId, this.clock.now(), 1, 1);
  }

  remove(macHigh: number, macLow: number): boolean {
    const slot = this.find(macHigh, macLow);
    if (slot < 0) return false;
    this.removeSlot(slot);
    return true;
  }

  /** Removes every learned entry older than the ageing time. Returns how many. */
  ageOut(): number {
    const now = this.clock.now();
    let removed = 0;
    for (let slot = 0; slot <= this.mask; ) {
      if (
        this.keyHigh[slot] !== EMPTY &&
        this.pinned[slot] === 0 &&
        now - this.lastSeen[slot] > this.ageingMs
      ) {
        this.removeSlot(slot);
        removed++;
        continue; // an entry may have shifted into this slot: look again
      }
      slot++;
    }
    return removed;
  }

  /** Removes every entry, learned or static, that points at remoteId. */
  forgetRemote(remoteId: number): number {
    let removed = 0;
    for (let slot = 0; slot <= this.mask; ) {
      if (this.keyHigh[slot] !== EMPTY && this.remote[slot] === remoteId) {
        this.removeSlot(slot);
        removed++;
        continue;
      }
      slot++;
    }
    return removed;
  }

  /** Adds to inUse the id of every remote that an entry points at. */
  remotesInUse(inUse: Set<number>): void {
    for (let slot = 0; slot <= this.mask; slot++) if (this.keyHigh[slot] !== EMPTY) inUse.add(this.remote[slot]);
  }

  /** A snapshot for display; not for the data path. */
  entries(): FdbEntry[] {
    const now = this.clock.now();
    const out: FdbEntry[] = [];
    for (let slot = 0; slot <= this.mask; slot++) {
      if (this.keyHigh[slot] === EMPTY) continue;
      const isStatic = this.pinned[slot] !== 0;
      const ageMs = isStatic ? 0 : now - this.lastSeen[slot];
      if (!isStatic && ageMs > this.ageingMs) continue;
      out.push({ macHigh: this.keyHigh[slot], macLow: this.keyLow[slot], remoteId: this.remote[slot], isStatic, trusted: this.trusted[slot] !== 0, ageMs });
    }
    return out;
  }

  private home(macHigh: number, macLow: number): number {
    let h = Math.imul(macLow ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(macHigh + 0x7f4a7c15, 0x85ebca6b);
    h ^= h >>> 15;
    return h & this.mask;
  }

  private find(macHigh: number, macLow: number): number {
    let slot = this.home(macHigh, macLow);
    for (;;) {
      const high = this.keyHigh[slot];
      if (high === EMPTY) return -1;
      if (high === macHigh && this.keyLow[slot] === macLow) return slot;
      slot = (slot + 1) & this.mask;
    }
  }

  private freeSlot(macHigh: number, macLow: number): number {
    let slot = this.home(macHigh, macLow);
    while (this.keyHigh[slot] !== EMPTY) slot = (slot + 1) & this.mask;
    return slot;
  }

  private fill(slot: number, macHigh: number, macLow: number, remoteId: number, now: number, pinned: number, trusted: number): void {
    this.keyHigh[slot] = macHigh;
    this.keyLow[slot] = macLow;
    this.remote[slot] = remoteId;
    this.lastSeen[slot] = now;
    this.pinned[slot] = pinned;
    this.trusted[slot] = trusted;
    this.movedAt[slot] = -Infinity;
    this.count++;
  }

  /** Backward-shift deletion: pull later entries of the probe run into the hole. */
  private removeSlot(hole: number): void {
    const mask = this.mask;
    let next = (hole + 1) & mask;
    while (this.keyHigh[next] !== EMPTY) {
      const home = this.home(this.keyHigh[next], this.keyLow[next]);
      // Move the entry back only if its home is not in (hole, next].
      const distanceToNext = (next - home) & mask;
      const distanceToHole = (hole - home) & mask;
      if (distanceToHole < distanceToNext) {
        this.keyHigh[hole] = this.keyHigh[next];
        this.keyLow[hole] = this.keyLow[next];
        this.remote[hole] = this.remote[next];
        this.lastSeen[hole] = this.lastSeen[next];
        this.pinned[hole] = this.pinned[next];
        this.trusted[hole] = this.trusted[next];
        this.movedAt[hole] = this.movedAt[next];
        hole = next;
      }
      next = (next + 1) & mask;
    }
    this.keyHigh[hole] = EMPTY;
    this.count--;
  }
}
