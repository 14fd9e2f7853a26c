// The remote VTEPs this daemon talks to, each with a small numeric id that
// the FDB stores. A remote is identified by its address alone: kernel vxlan
// peers send from a different source port per flow, and we always answer on
// the VXLAN port.

import { ADDR_RECORD_LEN, recordAddress, writeAddressRecord } from './address';

export class RemoteCounters {
  rxDatagrams = 0;
  rxBytes = 0;
  txDatagrams = 0;
  txBytes = 0;
}

export interface Remote {
  readonly id: number;
  /** Canonical text form, e.g. '10.0.1.41' or 'fd00::2'. */
  readonly address: string;
  /** Where datagrams to this remote go: its address and our VXLAN port. */
  readonly record: Buffer;
  /**
   * True for remotes found by receiving from them (learn-remotes mode) that
   * are no configured peer; cleared when one is made a peer.
   */
  learned: boolean;
  readonly counters: RemoteCounters;
  /**
   * Largest inner packet (L3) the underlay path to this remote carries, as
   * the kernel last told us (a send failing with EMSGSIZE); NO_PATH_LIMIT
   * until then. The engine lowers and raises it.
   */
  mtu: number;
}

/** Remote.mtu of a remote whose path has not been found smaller than the overlay MTU. */
export const NO_PATH_LIMIT = 65_535;

const EMPTY = -1;

export class RemoteTable {
  private readonly byId: (Remote | undefined)[] = [];
  private readonly freeIds: number[] = [];
  /** Open-addressing index: hash of the 16 address bytes -> remote id. */
  private index = new Int32Array(64).fill(EMPTY);
  /** What learned remotes that were forgotten had counted, so totals over learned remotes never go down. */
  readonly retiredLearned = new RemoteCounters();

  constructor(private readonly port: number) {}

  get(id: number): Remote | undefined {
    return this.byId[id];
  }

  all(): Remote[] {
    return this.byId.filter((r): r is Remote => r !== undefined);
  }

  /** The remote for an address, created if new; a learned one that is added as a peer is learned no more. */
  add(address: string, learned = false): Remote {
    const record = Buffer.alloc(ADDR_RECORD_LEN);
    writeAddressRecord(address, this.port, record, 0);
    const existing = this.findByRecord(record, 0);
    if (existing !== EMPTY) {
      const remote = this.byId[existing] as Remote;
      if (!learned) remote.learned = false;
      return remote;
    }
    return this.insert(record, learned);
  }

  /** The id of the remote at address, or -1. */
  find(address: string): number {
    const record = Buffer.alloc(ADDR_RECORD_LEN);
    writeAddressRecord(address, this.port, record, 0);
    return this.findByRecord(record, 0);
  }

  /** The remote for the address of a received record, created if new. */
  addFromRecord(records: Buffer, offset: number, learned: boolean): Remote {
    const record = Buffer.alloc(ADDR_RECORD_LEN);
    records.copy(record, 0, offset, offset + 16);
    record.writeUInt16BE(this.port, 16);
    return this.insert(record, learned);
  }

  remove(id: number): void {
    if (this.byId[id] === undefined) return;
    this.byId[id] = undefined;
    this.freeIds.push(id);
    this.rebuildIndex(this.index.length);
  }

  /**
   * Removes every learned remote for which inUse(id) is false, with one
   * rebuild of the index; their counters are added to retiredLearned. Returns how many.
   */
  removeLearned(inUse: (id: number) => boolean): number {
    let removed = 0;
    for (let id = 0; id < this.byId.length; id++) {
      const remote = this.byId[id];
      if (remote === undefined || !remote.learned || inUse(id)) continue;
      const retired = this.retiredLearned;
      retired.rxDatagrams += remote.counters.rxDatagrams;
      retired.rxBytes += remote.counters.rxBytes;
      retired.txDatagrams += remote.counters.txDatagrams;
      retired.txBytes += remote.counters.txBytes;
      this.byId[id] = undefined;
      this.freeIds.push(id);
      removed++;
    }
    if (removed > 0) this.rebuildIndex(this.index.length);
    return removed;
  }

  /** HOT PATH: the id of the remote whose address is in records[offset..+16], or -1. */
  findByRecord(records: Buffer, offset: number): number {
    const mask = this.index.length - 1;
    let slot = hashAddress(records, offset) & mask;
    for (;;) {
      const id = this.index[slot];
      if (id === EMPTY) return EMPTY;
      const remote = this.byId[id] as Remote;
      if (sameAddress(remote.record, records, offset)) return id;
      slot = (slot + 1) & mask;
    }
  }

  private insert(record: Buffer, learned: boolean): Remote {
    const id = this.freeIds.length > 0 ? (this.freeIds.pop() as number) : this.byId.length;
    const remote: Remote = {
      id,
      address: recordAddress(record, 0),
      record,
      learned,
      counters: new RemoteCounters(),
      mtu: NO_PATH_LIMIT,
    };
    this.byId[id] = remote;
    const live = this.byId.length - this.freeIds.length;
    if (live * 2 > this.index.length) this.rebuildIndex(this.index.length * 2);
    else this.indexInsert(remote);
    return remote;
  }

  private rebuildIndex(slots: number): void {
    this.index = new Int32Array(slots).fill(EMPTY);
    for (const remote of this.byId) if (remote) this.indexInsert(remote);
  }

  private indexInsert(remote: Remote): void {
    const mask = this.index.length - 1;
    let slot = hashAddress(remote.record, 0) & mask;
    while (this.index[slot] !== EMPTY) slot = (slot + 1) & mask;
    this.index[slot] = remote.id;
  }
}

function hashAddress(buf: Buffer, offset: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i += 4) {
    // Bytes, not readUInt32LE: its result above 2^31 would be boxed, an allocation per datagram.
    const word = buf[offset + i] | (buf[offset + i + 1] << 8) | (buf[offset + i + 2] << 16) | (buf[offset + i + 3] << 24);
    h = Math.imul(h ^ word, 0x01000193);
    h ^= h >>> 13;
  }
  // Within a small integer's range, so returning it allocates nothing; callers mask it anyway.
  return h & 0x3fffffff;
}

function sameAddress(a: Buffer, b: Buffer, bOffset: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[bOffset + i]) return false;
  return true;
}
