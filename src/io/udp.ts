// The underlay UDP socket: a DatagramPort over recvmmsg/sendmmsg in the addon.

import { ADDR_RECORD_LEN, addressRecord, recordAddress, recordPort } from '../core/address';
import type { DatagramPort } from '../core/ports';
import { native, type NativePoller } from './native';

/** Socket buffers large enough to ride out a burst of a few thousand frames. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

export class UdpSocket implements DatagramPort {
  private poller: NativePoller | undefined;
  private closed = false;

  private constructor(readonly fd: number) {}

  /**
   * Binds address:port. '::' serves IPv4 and IPv6 on one socket; an IPv4
   * address gives an IPv4-only socket.
   */
  static bind(address: string, port: number, dontFragment: boolean | 'inherit'): UdpSocket {
    const record = addressRecord(address, port);
    // 'inherit' opens with DF clear; the engine then chooses per datagram (sendBatch).
    const fd = native().udpOpen(record, false, SOCKET_BUFFER_BYTES, SOCKET_BUFFER_BYTES, dontFragment === true);
    return new UdpSocket(fd);
  }

  localAddress(): { address: string; port: number } {
    const record = Buffer.alloc(20);
    native().udpLocalRecord(this.fd, record);
    return { address: recordAddress(record, 0), port: recordPort(record, 0) };
  }

  recvBatch(
    slab: Buffer,
    slotSize: number,
    headroom: number,
    max: number,
    lengths: Uint32Array,
    records: Buffer,
    segmentSizes?: Uint32Array,
  ): number {
    return native().recvBatch(this.fd, slab, slotSize, headroom, max, lengths, records, segmentSizes);
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

  sendBatch(
    slab: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    records: Buffer,
    count: number,
    results: Int32Array,
    dontFragment?: Uint8Array,
    segmentSizes?: Uint32Array,
  ): number {
    return native().sendBatch(this.fd, slab, offsets, lengths, records, count, results, segmentSizes, dontFragment);
  }

  pathMtu(records: Buffer, offset: number): number {
    try {
      return native().pathMtu(offset === 0 ? records : records.subarray(offset, offset + ADDR_RECORD_LEN));
    } catch {
      return 0;
    }
  }

  /** Calls onReadable whenever datagrams wait; errno is non-zero if polling failed, and polling then stops. */
  watch(onReadable: (errno: number) => void): void {
    // A poller that reports an error is stopped: libuv's keeps firing otherwise (or has
    // stopped itself, unseen), and the owner decides what the error means.
    const poller = new (native().Poller)(this.fd, (errno) => {
      if (errno !== 0) poller.stop();
      onReadable(errno);
    });
    this.poller = poller;
    poller.start();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    native().closeFd(this.fd);
  }
}
