// What the engine needs from the outside world, in batches. The native TAP and
// UDP socket implement these; so do the in-memory fakes the simulation uses.

/** A layer-2 device: the TAP on the bridge. */
export interface FramePort {
  /** Reads up to max frames, frame i into slab[i*slotSize + headroom]; 0 when none wait. */
  readFrames(slab: Buffer, slotSize: number, headroom: number, max: number, lengths: Uint32Array): number;
  /** Writes frames; results[i] = 0 or the errno of frame i. Returns how many were written. */
  writeFrames(slab: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number, results: Int32Array): number;
}

/** The underlay UDP socket. Addresses are 20-byte records (see address.ts). */
export interface DatagramPort {
  recvBatch(
    slab: Buffer,
    slotSize: number,
    headroom: number,
    max: number,
    lengths: Uint32Array,
    records: Buffer,
  ): number;
  sendBatch(
    slab: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    records: Buffer,
    count: number,
    results: Int32Array,
  ): number;
}
