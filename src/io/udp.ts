// The underlay UDP socket: a DatagramPort over recvmmsg/sendmmsg in the addon.
//
// The policy of sending lives here, not in the addon and not in the engine:
// - DF per datagram ('inherit'): the queue is sent in runs of equal DF, with
//   one setsockopt when the mode changes (setDontFragment);
// - UDP GSO: a train the kernel refuses (EIO, or EINVAL for a reason other
//   than its size) is tried once more; refused again, GSO is off for good on
//   this socket, and trains are split into datagrams here (sendSplit);
// - a full socket buffer: the addon returns EAGAIN and never waits; the
//   caller keeps what was not sent and calls waitWritable.

import { constants } from 'node:os';
import { ADDR_RECORD_LEN, addressRecord, isMappedIpv4, recordAddress, recordPort } from '../core/address';
import { SendQueue } from '../core/batches';
import type { Slab } from '../core/batches';
import { SEND_DONE, SEND_GSO_DISABLED, type DatagramPort, type SendOutcome } from '../core/ports';
import { IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN } from '../core/protocol';
import { native, type NativeAddon } from './native';
import { PolledDescriptor } from './polled';

/** Socket buffers large enough to ride out a burst of a few thousand frames. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
const { EAGAIN, EIO, EINVAL, EMSGSIZE } = constants.errno;

/** The system calls a UdpSocket's sending makes: the addon's, or a fake kernel's in tests. */
export type UdpSyscalls = Pick<NativeAddon, 'sendBatch' | 'udpSetDontFragment' | 'pathMtu' | 'BATCH_MAX'>;

export class UdpSocket extends PolledDescriptor implements DatagramPort {
  /** The errno with which the kernel refused UDP GSO; 0 while it takes it. */
  gsoError = 0;
  private readonly family: 4 | 6;
  /** The DF mode the socket is in, as last set. */
  private dontFragment: boolean;
  /** Trains split into datagrams once GSO is off; split.segments[j] is the queue entry datagram j came from. */
  private readonly split: SendQueue;

  private constructor(
    fd: number,
    record: Buffer,
    dontFragment: boolean,
    private readonly sys: UdpSyscalls,
  ) {
    super(fd);
    this.family = isMappedIpv4(record, 0) ? 4 : 6;
    this.dontFragment = dontFragment;
    this.split = new SendQueue(sys.BATCH_MAX, Buffer.alloc(0));
  }

  /**
   * Binds address:port. '::' serves IPv4 and IPv6 on one socket; an IPv4
   * address gives an IPv4-only socket.
   */
  static open(address: string, port: number, dontFragment: boolean | 'inherit', receiveBuffer = SOCKET_BUFFER_BYTES): UdpSocket {
    const record = addressRecord(address, port);
    // 'inherit' opens with DF clear; the queue then says it per datagram (sendBatch).
    const fd = native().udpOpen(record, false, receiveBuffer, SOCKET_BUFFER_BYTES, dontFragment === true);
    return new UdpSocket(fd, record, dontFragment === true, native());
  }

  /** A socket on descriptor fd whose sends go to sys: for tests, with a fake kernel. */
  static over(fd: number, address: string, sys: UdpSyscalls): UdpSocket {
    return new UdpSocket(fd, addressRecord(address, 0), false, sys);
  }

  localAddress(): { address: string; port: number } {
    const record = Buffer.alloc(ADDR_RECORD_LEN);
    native().udpLocalRecord(this.fd, record);
    return { address: recordAddress(record, 0), port: recordPort(record, 0) };
  }

  recvBatch(slab: Slab): number {
    return native().recvBatch(this.fd, slab.bytes, slab.slotSize, slab.headroom, slab.slots, slab.lengths, slab.records, slab.segmentSizes ?? null);
  }

  /**
   * Asks the kernel to hand over runs of datagrams from one sender as one
   * buffer (UDP_GRO). Returns why not if it refuses; the socket then works as before.
   */
  enableGro(): string | undefined {
    try {
      native().udpEnableGro(this.fd);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  }

  // HOT PATH: the queue in runs of equal DF (one run without per-datagram DF).
  sendBatch(queue: SendQueue): SendOutcome {
    const count = queue.count;
    const gsoBefore = this.gsoError;
    if (!queue.perDatagramDf) {
      this.sendRange(queue, 0, count);
    } else {
      const df = queue.dontFragment;
      for (let first = 0; first < count; ) {
        let end = first + 1;
        while (end < count && df[end] === df[first]) end++;
        this.setDontFragment(df[first] === 1);
        if (this.sendRange(queue, first, end)) {
          queue.results.fill(EAGAIN, end, count);
          break;
        }
        first = end;
      }
    }
    return this.gsoError !== 0 && gsoBefore === 0 ? SEND_GSO_DISABLED : SEND_DONE;
  }

  /** Sends entries first..end-1; true if the socket buffer filled up (EAGAIN) on the way. */
  private sendRange(queue: SendQueue, first: number, end: number): boolean {
    const max = this.sys.BATCH_MAX;
    let blocked = false;
    for (let from = first; from < end && !blocked; from += max) {
      const to = Math.min(end, from + max);
      if (this.gsoError !== 0) blocked = this.sendSplit(queue, from, to);
      else {
        this.sys.sendBatch(this.fd, this.family, queue.bytes, queue.offsets, queue.lengths, queue.records, queue.results, queue.segmentSizes, from, to);
        blocked = queue.results[to - 1] === EAGAIN;
        this.handleRefusedTrains(queue, from, to);
      }
      if (blocked) queue.results.fill(EAGAIN, to, end);
    }
    return blocked;
  }

  /** Off the hot path: a train that failed with EIO or EINVAL. */
  private handleRefusedTrains(queue: SendQueue, first: number, end: number): void {
    const { results, segmentSizes, lengths } = queue;
    for (let k = first; k < end; k++) {
      const errno = results[k];
      if ((errno !== EIO && errno !== EINVAL) || segmentSizes[k] === 0 || segmentSizes[k] >= lengths[k]) continue;
      // EINVAL for a segment larger than the path is the kernel's EMSGSIZE for GSO.
      if (errno === EINVAL && this.exceedsPath(queue, k)) {
        results[k] = EMSGSIZE;
        continue;
      }
      if (this.gsoError === 0) {
        // Once more, alone: the refusal may have been the batch's, not GSO's.
        this.sys.sendBatch(this.fd, this.family, queue.bytes, queue.offsets, queue.lengths, queue.records, results, segmentSizes, k, k + 1);
        if (results[k] !== EIO && results[k] !== EINVAL) continue;
        this.gsoError = results[k];
      }
      this.sendSplit(queue, k, k + 1);
    }
  }

  /** Whether entry k's segments, with outer IP and UDP headers, are larger than the kernel's path MTU. */
  private exceedsPath(queue: SendQueue, k: number): boolean {
    const mtu = this.pathMtu(queue.records, k * ADDR_RECORD_LEN);
    const ipHeader = isMappedIpv4(queue.records, k * ADDR_RECORD_LEN) ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
    return mtu > 0 && queue.segmentSizes[k] + UDP_HEADER_LEN + ipHeader > mtu;
  }

  /**
   * Without GSO: entries first..end-1 with each train cut into its datagrams. An entry's result
   * is the first errno of its datagrams. True if the socket buffer filled up.
   */
  private sendSplit(queue: SendQueue, first: number, end: number): boolean {
    const split = this.split;
    split.bytes = queue.bytes;
    split.count = 0;
    for (let k = first; k < end; k++) {
      queue.results[k] = 0;
      const size = queue.segmentSizes[k] > 0 && queue.segmentSizes[k] < queue.lengths[k] ? queue.segmentSizes[k] : queue.lengths[k];
      const stop = queue.offsets[k] + queue.lengths[k];
      for (let offset = queue.offsets[k]; offset < stop; offset += size) {
        if (split.count === split.capacity && this.flushSplit(queue)) {
          queue.results.fill(EAGAIN, k, end);
          return true;
        }
        const j = split.count++;
        split.offsets[j] = offset;
        split.lengths[j] = Math.min(size, stop - offset);
        split.segments[j] = k;
        queue.records.copy(split.records, j * ADDR_RECORD_LEN, k * ADDR_RECORD_LEN, (k + 1) * ADDR_RECORD_LEN);
      }
    }
    return this.flushSplit(queue);
  }

  private flushSplit(queue: SendQueue): boolean {
    const split = this.split;
    const n = split.count;
    split.count = 0;
    if (n === 0) return false;
    this.sys.sendBatch(this.fd, this.family, split.bytes, split.offsets, split.lengths, split.records, split.results, null, 0, n);
    for (let j = 0; j < n; j++) {
      const k = split.segments[j];
      if (split.results[j] !== 0 && queue.results[k] === 0) queue.results[k] = split.results[j];
    }
    return split.results[n - 1] === EAGAIN;
  }

  /** One setsockopt per change of mode, and none while it stays. */
  private setDontFragment(on: boolean): void {
    if (on === this.dontFragment) return;
    // Remembered even if refused (an IPv6-only socket has no IPv4 DF), so it is not asked again.
    this.dontFragment = on;
    try {
      this.sys.udpSetDontFragment(this.fd, on);
    } catch {
      // Its datagrams go out with the mode the socket has.
    }
  }

  pathMtu(records: Buffer, offset: number): number {
    try {
      return this.sys.pathMtu(offset === 0 ? records : records.subarray(offset, offset + ADDR_RECORD_LEN));
    } catch {
      return 0;
    }
  }
}
