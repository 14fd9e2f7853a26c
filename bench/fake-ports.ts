// In-memory ports for the micro-benchmarks: a TAP that always has the same
// batch of frames waiting, and a UDP socket pair where what one engine sends
// is what the other receives.
//
// They copy bytes only the first time they see a slab: the frames do not
// change between batches (the engine writes the VXLAN header into headroom,
// never into the frame), so later batches measure the engine's own work, not
// memcpy. The kernel's copy is in the system benchmark.

import { ADDR_RECORD_LEN, writeAddressRecord } from '../src/core/address';
import type { DatagramPort, FramePort } from '../src/core/ports';

/** A TAP with `frames` waiting on every other read (a batch, then "nothing waits"). */
export class FakeTap implements FramePort {
  written = 0;
  private filled = new WeakSet<Buffer>();
  private ready = true;

  constructor(private readonly frames: Buffer[]) {}

  readFrames(slab: Buffer, slotSize: number, headroom: number, max: number, lengths: Uint32Array): number {
    if (!this.ready) {
      this.ready = true;
      return 0;
    }
    this.ready = false;
    const n = Math.min(max, this.frames.length);
    const fill = !this.filled.has(slab);
    for (let i = 0; i < n; i++) {
      if (fill) this.frames[i].copy(slab, i * slotSize + headroom);
      lengths[i] = this.frames[i].length;
    }
    if (fill) this.filled.add(slab);
    return n;
  }

  writeFrames(_slab: Buffer, _offsets: Uint32Array, _lengths: Uint32Array, count: number, results: Int32Array): number {
    results.fill(0, 0, count);
    this.written += count;
    return count;
  }
}

/**
 * One end of a wire. sendBatch keeps the batch; the other end's recvBatch
 * hands it out once, as if from `from` (an underlay address).
 */
export class FakeSocket implements DatagramPort {
  peer: FakeSocket | undefined;
  private pending: { slab: Buffer; offsets: Uint32Array; lengths: Uint32Array; count: number } | undefined;
  private filled = new WeakSet<Buffer>();
  private readonly fromRecord = Buffer.alloc(ADDR_RECORD_LEN);

  constructor(from: string, port: number) {
    writeAddressRecord(from, port, this.fromRecord, 0);
  }

  sendBatch(
    slab: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    _records: Buffer,
    count: number,
    results: Int32Array,
  ): number {
    results.fill(0, 0, count);
    if (this.peer) this.peer.pending = { slab, offsets, lengths, count };
    return count;
  }

  recvBatch(slab: Buffer, slotSize: number, headroom: number, max: number, lengths: Uint32Array, records: Buffer): number {
    const batch = this.pending;
    this.pending = undefined;
    if (batch === undefined || this.peer === undefined) return 0;
    const n = Math.min(max, batch.count);
    const fill = !this.filled.has(slab);
    for (let i = 0; i < n; i++) {
      if (fill) {
        batch.slab.copy(slab, i * slotSize + headroom, batch.offsets[i], batch.offsets[i] + batch.lengths[i]);
        this.peer.fromRecord.copy(records, i * ADDR_RECORD_LEN);
      }
      lengths[i] = batch.lengths[i];
    }
    if (fill) this.filled.add(slab);
    return n;
  }
}

/** Wires two fake sockets back to back. */
export function fakeWire(a: FakeSocket, b: FakeSocket): void {
  a.peer = b;
  b.peer = a;
}
