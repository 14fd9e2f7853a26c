// What the engine needs from the outside world, in batches. The native TAP and
// UDP socket implement these; so do the in-memory fakes of the tests and the
// benchmarks. Each call takes one of the engine's preallocated batch objects
// (batches.ts) and fills or empties it: no positional argument lists, no
// allocation per call.

import type { FrameBatch, SendQueue, Slab } from './batches';

/** A layer-2 device: the TAP on the bridge. */
export interface FramePort {
  /** Frames carry a virtio_net_hdr in front (TAP offloads on; see offload.ts). */
  readonly vnetHeader?: boolean;
  /**
   * Reads up to slab.slots frames, frame i into slab.bytes[i*slotSize + headroom] and its
   * length into slab.lengths[i]. Returns how many; 0 when none wait. Never blocks.
   */
  readFrames(slab: Slab): number;
  /**
   * Writes batch.count frames; batch.results[k] = 0 or the errno of frame k (a failed frame is
   * skipped, not retried). Returns how many were written. Never blocks.
   */
  writeFrames(batch: FrameBatch): number;
  /** Stop and restart calling the owner back when frames wait (the engine cannot send now). */
  pauseReading?(): void;
  resumeReading?(): void;
}

/** sendBatch sent, or failed per datagram, everything it was given (see results). */
export const SEND_DONE = 0;
/**
 * As SEND_DONE, and the kernel has just refused UDP GSO twice: the port now sends trains
 * datagram by datagram, for good. Returned once per port; gsoError says why.
 */
export const SEND_GSO_DISABLED = 1;
export type SendOutcome = typeof SEND_DONE | typeof SEND_GSO_DISABLED;

/** The underlay UDP socket. Addresses are 20-byte records (see address.ts). */
export interface DatagramPort {
  /**
   * Receives up to slab.slots datagrams, datagram i into slab.bytes[i*slotSize + headroom], its
   * length into slab.lengths[i] and its sender into slab.records[i*20]. With slab.segmentSizes
   * (UDP_GRO on) a slot may hold a run of datagrams, segmentSizes[i] their size. A datagram
   * larger than its slot is reported longer than the slot, to be counted as oversize.
   * Returns how many; 0 when none wait.
   */
  recvBatch(slab: Slab): number;
  /**
   * Sends queue.count datagrams (see SendQueue): queue.results[k] is 0, or the errno of entry k:
   * - EMSGSIZE: larger than the path (outer DF set, or a GSO segment the path cannot carry);
   * - EAGAIN: not sent because the socket buffer is full (as a rule that entry and every
   *   later one); the caller keeps them and calls waitWritable;
   * - anything else: dropped (no route, refused, ...).
   * Trains (segmentSizes[k] > 0) go out with UDP GSO while the kernel takes it. A refused train
   * is tried once more, then GSO is off for good on this port: that train and later ones are
   * split here, and the call returns SEND_GSO_DISABLED once.
   */
  sendBatch(queue: SendQueue): SendOutcome;
  /** The errno with which the kernel refused UDP GSO; 0 while it has not. */
  readonly gsoError?: number;
  /** Calls back once when sending can go on after EAGAIN. Without it, EAGAIN is a drop. */
  waitWritable?(callback: () => void): void;
  /**
   * The kernel's path MTU towards the address in records[offset..+20]: the route's MTU, lowered
   * by ICMP "too big" from the underlay. 0 if it cannot tell. Optional: fakes may leave it out.
   */
  pathMtu?(records: Buffer, offset: number): number;
}
