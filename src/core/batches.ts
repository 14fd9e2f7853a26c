// Preallocated batches the engine moves frames and datagrams in. Each is
// sized once; the data path only fills and empties them. The ports
// (ports.ts) take these objects as they are: one batch, one call.

import { ADDR_RECORD_LEN } from './address';
import type { WriteList } from './coalesce';
import type { Network } from './network';

/**
 * A batch of frames or datagrams in one buffer: slot i at bytes[i*slotSize + headroom],
 * its length in lengths[i], and (datagrams) its sender in records[i*20].
 */
export class Slab {
  readonly bytes: Buffer;
  readonly lengths: Uint32Array;
  readonly records: Buffer;
  /**
   * Received with UDP_GRO: segmentSizes[i] > 0 says datagram i is a run of datagrams of that
   * size (the last may be shorter) from one sender. Undefined: one datagram per slot.
   */
  readonly segmentSizes: Uint32Array | undefined;
  constructor(
    readonly slots: number,
    readonly slotSize: number,
    /** Bytes kept free in front of every slot, for a header written in place. */
    readonly headroom: number,
    /** Bytes after the last slot, for frames the engine makes itself (fragments, coalesced frames). */
    readonly scratch = 0,
    runs = false,
  ) {
    this.bytes = Buffer.alloc(slots * slotSize + scratch);
    this.lengths = new Uint32Array(slots);
    this.records = Buffer.alloc(slots * ADDR_RECORD_LEN);
    this.segmentSizes = runs ? new Uint32Array(slots) : undefined;
  }
}

/**
 * Datagrams waiting for one sendBatch call: datagram k is bytes[offsets[k]..+lengths[k]] to the
 * address in records[k*20]. Several entries may point at the same bytes (one frame flooded to
 * every peer).
 */
export class SendQueue {
  count = 0;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly records: Buffer;
  /** After sendBatch: 0, or the errno of datagram k. */
  readonly results: Int32Array;
  /** DF per datagram (1 set, 0 clear), read only when perDatagramDf; otherwise the socket's own setting applies. */
  readonly dontFragment: Uint8Array;
  perDatagramDf = false;
  /** segmentSizes[k] > 0: entry k is a train of datagrams of that size (the last may be shorter), UDP GSO. */
  readonly segmentSizes: Uint32Array;
  // The engine's bookkeeping, not read by the ports:
  /** Datagrams entry k carries (1, or the segments of a train). */
  readonly segments: Uint32Array;
  readonly remoteIds: Int32Array;
  readonly networks: (Network | undefined)[];
  constructor(
    readonly capacity: number,
    /** The buffer the offsets point into. */
    public bytes: Buffer,
  ) {
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.records = Buffer.alloc(capacity * ADDR_RECORD_LEN);
    this.results = new Int32Array(capacity);
    this.dontFragment = new Uint8Array(capacity);
    this.segmentSizes = new Uint32Array(capacity);
    this.segments = new Uint32Array(capacity);
    this.remoteIds = new Int32Array(capacity);
    this.networks = new Array(capacity).fill(undefined);
  }

  /** Queues bytes[offset..+length] to the remote whose address is record (the caller checks there is room). */
  // HOT PATH
  add(network: Network, remoteId: number, record: Buffer, offset: number, length: number, segmentSize: number, segments: number, dontFragment: number): void {
    const k = this.count++;
    this.offsets[k] = offset;
    this.lengths[k] = length;
    this.segmentSizes[k] = segmentSize;
    this.segments[k] = segments;
    this.dontFragment[k] = dontFragment;
    this.remoteIds[k] = remoteId;
    this.networks[k] = network;
    record.copy(this.records, k * ADDR_RECORD_LEN, 0, ADDR_RECORD_LEN);
  }
}

/** Frames for one writeFrames call: frame k is bytes[offsets[k]..+lengths[k]]. */
export interface FrameBatch {
  readonly bytes: Buffer;
  readonly count: number;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  /** After writeFrames: 0, or the errno of frame k. */
  readonly results: Int32Array;
  /**
   * For ports with vnetHeader. false: every frame is plain and gets an empty virtio_net_hdr in
   * front. true: prependHeader[k] = 1 if frame k needs one, 0 if it starts with its own.
   */
  readonly ownHeaders: boolean;
  readonly prependHeader: Uint8Array;
}

/** Frames waiting for one writeFrames call on a network's TAP. */
export class WriteQueue implements WriteList, FrameBatch {
  count = 0;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly results: Int32Array;
  /** Received frames an entry carries (more than one once coalesced). */
  readonly frames: Uint32Array;
  /** Received inner bytes an entry carries. */
  readonly innerBytes: Uint32Array;
  /** Set when the coalescer filled prependHeader for this batch. */
  ownHeaders = false;
  readonly prependHeader: Uint8Array;
  /** Listed in the receive path's pending writes. */
  pending = false;
  constructor(
    readonly capacity: number,
    /** The receive slab the offsets point into. */
    readonly bytes: Buffer,
  ) {
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.results = new Int32Array(capacity);
    this.frames = new Uint32Array(capacity);
    this.innerBytes = new Uint32Array(capacity);
    this.prependHeader = new Uint8Array(capacity);
  }
}

/** Frames the engine makes and writes to a TAP itself (ICMP answers), slot i at i*slotSize. */
export class FrameOut implements FrameBatch {
  count = 0;
  readonly bytes: Buffer;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly results: Int32Array;
  readonly ownHeaders = false;
  readonly prependHeader: Uint8Array;
  constructor(slots: number, slotSize: number) {
    this.bytes = Buffer.alloc(slots * slotSize);
    this.offsets = new Uint32Array(slots);
    this.lengths = new Uint32Array(slots);
    this.results = new Int32Array(slots);
    this.prependHeader = new Uint8Array(slots);
    for (let i = 0; i < slots; i++) this.offsets[i] = i * slotSize;
  }
}

/** The segments of one TSO frame, back to back, sent as trains (UDP GSO). */
export class TrainQueue extends SendQueue {
  /** [count, stride, lastLength] of the last segmentTcp call. */
  readonly shape = new Uint32Array(3);
  constructor(capacity: number) {
    // Room for 64 KiB cut into small segments, each behind its own headers.
    super(capacity, Buffer.alloc(256 * 1024));
  }
}
