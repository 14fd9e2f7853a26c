// The underlay UDP socket: a DatagramPort over recvmmsg/sendmmsg in the addon.

import { ADDR_RECORD_LEN, addressRecord, recordAddress, recordPort } from '../core/address';
import type { DatagramPort } from '../core/ports';
import { native } from './native';
import { PolledDescriptor } from './polled';

/** Socket buffers large enough to ride out a burst of a few thousand frames. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

export class UdpSocket extends PolledDescriptor implements DatagramPort {

  private constructor(fd: number) {
    super(fd);
  }

  /**
   * Binds address:port. '::' serves IPv4 and IPv6 on one socket; an IPv4
   * address gives an IPv4-only socket.
   */
  static open(address: string, port: number, dontFragment: boolean | 'inherit', receiveBuffer = SOCKET_BUFFER_BYTES): UdpSocket {
    const record = addressRecord(address, port);
    // 'inherit' opens with DF clear; the engine then chooses per datagram (sendBatch).
    const fd = native().udpOpen(record, false, receiveBuffer, SOCKET_BUFFER_BYTES, dontFragment === true);
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
}
