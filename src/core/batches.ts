// Preallocated batches the engine moves frames and datagrams in. Each is
// sized once; the data path only fills and empties them.

import { ADDR_RECORD_LEN } from './address';
import type { WriteList } from './coalesce';
import type { Network } from './network';

/** A batch of frames or datagrams in one slab, slot i at i*slotSize + HEADROOM. */
export class Slab {
  readonly bytes: Buffer;
  readonly lengths: Uint32Array;
  readonly records: Buffer;
  constructor(
    readonly slots: number,
    readonly slotSize: number,
    /** Bytes after the last slot, for frames the engine makes itself (fragments). */
    readonly scratch = 0,
  ) {
    this.bytes = Buffer.alloc(slots * slotSize + scratch);
    this.lengths = new Uint32Array(slots);
    this.records = Buffer.alloc(slots * ADDR_RECORD_LEN);
  }
}

/** Datagrams waiting for one sendBatch call. */
export class SendQueue {
  count = 0;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly records: Buffer;
  readonly results: Int32Array;
  readonly remoteIds: Int32Array;
  readonly networks: (Network | undefined)[];
  /** Outer DF per datagram, used with dontFragment 'inherit'. */
  readonly dontFragment: Uint8Array;
  constructor(readonly capacity: number) {
    this.dontFragment = new Uint8Array(capacity);
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.records = Buffer.alloc(capacity * ADDR_RECORD_LEN);
    this.results = new Int32Array(capacity);
    this.remoteIds = new Int32Array(capacity);
    this.networks = new Array(capacity).fill(undefined);
  }
}

/** Frames waiting for one writeFrames call on a network's TAP. */
export class WriteQueue implements WriteList {
  count = 0;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly results: Int32Array;
  /** Received frames an entry carries (more than one once coalesced). */
  readonly frames: Uint32Array;
  /** Received inner bytes an entry carries. */
  readonly innerBytes: Uint32Array;
  /** With offloads: 1 if an entry needs an empty virtio_net_hdr in front, 0 if it has its own. */
  readonly prependHeader: Uint8Array;
  /** Listed in Engine.pendingWrites. */
  pending = false;
  constructor(readonly capacity: number) {
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.results = new Int32Array(capacity);
    this.frames = new Uint32Array(capacity);
    this.innerBytes = new Uint32Array(capacity);
    this.prependHeader = new Uint8Array(capacity);
  }
}

/** Frames the engine makes and writes to a TAP itself (ICMP answers), slot i at i*slotSize. */
export class FrameOut {
  readonly bytes: Buffer;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly results: Int32Array;
  constructor(slots: number, slotSize: number) {
    this.bytes = Buffer.alloc(slots * slotSize);
    this.offsets = new Uint32Array(slots);
    this.lengths = new Uint32Array(slots);
    this.results = new Int32Array(slots);
    for (let i = 0; i < slots; i++) this.offsets[i] = i * slotSize;
  }
}

/** Trains of segments of one TSO frame, each sent with one UDP GSO call. */
export class GsoQueue extends SendQueue {
  /** Segments made from the frame, back to back: room for 64 KiB cut into small segments. */
  readonly bytes = Buffer.alloc(256 * 1024);
  readonly segmentSizes: Uint32Array;
  readonly segments: Uint32Array;
  /** [count, stride, lastLength] of the last segmentTcp call. */
  readonly shape = new Uint32Array(3);
  constructor(capacity: number) {
    super(capacity);
    this.segmentSizes = new Uint32Array(capacity);
    this.segments = new Uint32Array(capacity);
  }
}
