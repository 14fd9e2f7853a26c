// What the engine needs from the outside world, in batches. The native TAP and
// UDP socket implement these; so do the in-memory fakes the simulation uses.

/** A layer-2 device: the TAP on the bridge. */
export interface FramePort {
  /** Frames carry a virtio_net_hdr in front (TAP offloads on; see offload.ts). */
  readonly vnetHeader?: boolean;
  /** Reads up to max frames, frame i into slab[i*slotSize + headroom]; 0 when none wait. */
  readFrames(slab: Buffer, slotSize: number, headroom: number, max: number, lengths: Uint32Array): number;
  /**
   * Writes frames; results[i] = 0 or the errno of frame i. Returns how many were written.
   * prependHeader (ports with vnetHeader): 1 if frame k needs an empty virtio_net_hdr in front, 0 if it
   * starts with its own. Without it every frame gets an empty one.
   */
  writeFrames(slab: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number, results: Int32Array, prependHeader?: Uint8Array): number;
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
    /** If given (receive coalescing on), segmentSizes[i] > 0: datagram i is a run of datagrams of that size. */
    segmentSizes?: Uint32Array,
  ): number;
  /**
   * Sends datagram i = slab[offsets[i]..+lengths[i]] to records[i*20]; results[i] = 0 or its errno.
   * dontFragment, if given, chooses the outer IPv4 DF bit per datagram (1 set, 0 clear); without
   * it the socket's own setting applies.
   */
  sendBatch(
    slab: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    records: Buffer,
    count: number,
    results: Int32Array,
    dontFragment?: Uint8Array,
    /** If segmentSizes[i] > 0, datagram i is a train of datagrams of that size for the kernel to split (UDP GSO). */
    segmentSizes?: Uint32Array,
  ): number;
  /**
   * The kernel's path MTU towards the address in records[offset..+20]: the route's MTU, lowered
   * by ICMP "too big" from the underlay. 0 if it cannot tell. Optional: fakes may leave it out.
   */
  pathMtu?(records: Buffer, offset: number): number;
}
