// Datagrams that met a full socket buffer (EAGAIN), kept with copies of their
// bytes until the socket is writable again, so the slabs they came from can be
// reused meanwhile. Bounded: a datagram that does not fit is refused, and the
// caller drops and counts it.

import { ADDR_RECORD_LEN } from './address';
import { SendQueue } from './batches';
import type { Network } from './network';

/** Datagrams kept while the socket buffer is full, and their bytes. */
const BACKLOG_DATAGRAMS = 1024;
const BACKLOG_BYTES = 2 * 1024 * 1024;

export class Backlog {
  /** What waits, in the order it was queued; sent as it is with sendBatch. */
  readonly queue = new SendQueue(BACKLOG_DATAGRAMS, Buffer.alloc(BACKLOG_BYTES));
  private bytesUsed = 0;

  get count(): number {
    return this.queue.count;
  }

  /** Copies entry k of from (to the remote whose address is record) to the end; false if it does not fit. */
  hold(from: SendQueue, k: number, record: Buffer): boolean {
    const queue = this.queue;
    const length = from.lengths[k];
    if (queue.count === queue.capacity || this.bytesUsed + length > queue.bytes.length) return false;
    const offset = this.bytesUsed;
    from.bytes.copy(queue.bytes, offset, from.offsets[k], from.offsets[k] + length);
    this.bytesUsed += length;
    queue.add(from.networks[k] as Network, from.remoteIds[k], record, offset, length, from.segmentSizes[k], from.segments[k], from.dontFragment[k]);
    return true;
  }

  /**
   * After a sendBatch of the queue: keeps the entries whose result is `refused` (moved to the
   * front, bytes and all, in order) and calls done(k) for each of the others first.
   */
  keep(refused: number, done: (queue: SendQueue, k: number) => void): void {
    const queue = this.queue;
    let kept = 0;
    let keptBytes = 0;
    for (let k = 0; k < queue.count; k++) {
      if (queue.results[k] !== refused) {
        done(queue, k);
        continue;
      }
      const length = queue.lengths[k];
      queue.bytes.copyWithin(keptBytes, queue.offsets[k], queue.offsets[k] + length);
      queue.offsets[kept] = keptBytes;
      queue.lengths[kept] = length;
      queue.segmentSizes[kept] = queue.segmentSizes[k];
      queue.segments[kept] = queue.segments[k];
      queue.dontFragment[kept] = queue.dontFragment[k];
      queue.remoteIds[kept] = queue.remoteIds[k];
      queue.networks[kept] = queue.networks[k];
      if (kept !== k) queue.networks[k] = undefined;
      queue.records.copyWithin(kept * ADDR_RECORD_LEN, k * ADDR_RECORD_LEN, (k + 1) * ADDR_RECORD_LEN);
      keptBytes += length;
      kept++;
    }
    queue.count = kept;
    this.bytesUsed = keptBytes;
  }
}
