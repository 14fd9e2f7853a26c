// In-memory ports for the micro-benchmarks: a TAP that always has the same
// batch of frames waiting, and a UDP socket pair where what one engine sends
// is what the other receives.
//
// They copy bytes only the first time they see a slab: the frames do not
// change between batches (the engine writes the VXLAN header into headroom,
// never into the frame), so later batches measure the engine's own work, not
// memcpy. The kernel's copy is in the system benchmark.

import { ADDR_RECORD_LEN, writeAddressRecord } from '../src/core/address';
import { parseMac } from '../src/core/ethernet';
import type { FrameBatch, SendQueue, Slab } from '../src/core/batches';
import { SEND_DONE, type DatagramPort, type FramePort, type SendOutcome } from '../src/core/ports';

/** A TAP with `frames` waiting on every other read (a batch, then "nothing waits"). */
export class FakeTap implements FramePort {
  written = 0;
  private filled = new WeakSet<Buffer>();
  private ready = true;

  constructor(private readonly frames: Buffer[]) {}

  readFrames(slab: Slab): number {
    if (!this.ready) {
      this.ready = true;
      return 0;
    }
    this.ready = false;
    const n = Math.min(slab.slots, this.frames.length);
    const fill = !this.filled.has(slab.bytes);
    for (let i = 0; i < n; i++) {
      if (fill) this.frames[i].copy(slab.bytes, i * slab.slotSize + slab.headroom);
      slab.lengths[i] = this.frames[i].length;
    }
    if (fill) this.filled.add(slab.bytes);
    return n;
  }

  writeFrames(batch: FrameBatch): number {
    batch.results.fill(0, 0, batch.count);
    this.written += batch.count;
    return batch.count;
  }
}

/**
 * One end of a wire. sendBatch keeps the batch; the other end's recvBatch
 * hands it out once, as if from `from` (an underlay address).
 */
export class FakeSocket implements DatagramPort {
  peer: FakeSocket | undefined;
  private pending: SendQueue | undefined;
  private pendingCount = 0;
  private filled = new WeakSet<Buffer>();
  private readonly fromRecord = Buffer.alloc(ADDR_RECORD_LEN);

  constructor(from: string, port: number) {
    writeAddressRecord(from, port, this.fromRecord, 0);
  }

  sendBatch(queue: SendQueue): SendOutcome {
    queue.results.fill(0, 0, queue.count);
    if (this.peer) {
      this.peer.pending = queue;
      this.peer.pendingCount = queue.count;
    }
    return SEND_DONE;
  }

  recvBatch(slab: Slab): number {
    const batch = this.pending;
    this.pending = undefined;
    if (batch === undefined || this.peer === undefined) return 0;
    const n = Math.min(slab.slots, this.pendingCount);
    const fill = !this.filled.has(slab.bytes);
    for (let i = 0; i < n; i++) {
      if (fill) {
        batch.bytes.copy(slab.bytes, i * slab.slotSize + slab.headroom, batch.offsets[i], batch.offsets[i] + batch.lengths[i]);
        this.peer.fromRecord.copy(slab.records, i * ADDR_RECORD_LEN);
      }
      slab.lengths[i] = batch.lengths[i];
    }
    if (fill) this.filled.add(slab.bytes);
    return n;
  }
}

/** Wires two fake sockets back to back. */
export function fakeWire(a: FakeSocket, b: FakeSocket): void {
  a.peer = b;
  b.peer = a;
}

/** An IPv4-typed Ethernet frame of size bytes from src to dst; the payload is a byte pattern. */
export function frame(dst: string, src: string, size: number): Buffer {
  const buf = Buffer.alloc(size);
  const d = parseMac(dst) as { high: number; low: number };
  const s = parseMac(src) as { high: number; low: number };
  buf.writeUInt16BE(d.high, 0);
  buf.writeUInt32BE(d.low, 2);
  buf.writeUInt16BE(s.high, 6);
  buf.writeUInt32BE(s.low, 8);
  buf.writeUInt16BE(0x0800, 12);
  for (let i = 14; i < size; i++) buf[i] = i & 0xff;
  return buf;
}
