// Flow entropy in the outer UDP source port (RFC 7348 section 5). The daemon
// receives on its VXLAN port and sends from a few extra sockets bound to
// random ports in 49152-65535; each datagram leaves from the socket its inner
// flow hashes to, so one flow keeps one source port (no reordering) and ECMP
// routers in the underlay can spread different flows over their paths.
//
// The pool is a DatagramPort: the engine does not know there is more than one
// socket. Receiving, GRO and path MTU stay with the main socket.

import { ADDR_RECORD_LEN } from '../core/address';
import { flowHash } from '../core/flow';
import { VXLAN_HEADER_LEN } from '../core/vxlan';
import type { DatagramPort } from '../core/ports';
import { isErrnoError, native } from './native';
import { UdpSocket } from './udp';

const EPHEMERAL_FIRST = 49_152;
const EPHEMERAL_COUNT = 65_536 - EPHEMERAL_FIRST;
/** The senders never receive: the kernel's smallest buffer is enough. */
const SENDER_RECEIVE_BUFFER = 1;
/** Bytes of the inner frame that identify its flow (Ethernet, VLAN, IPv6, ports). */
const FLOW_BYTES = 128;

/** One socket's share of a batch, preallocated. */
class Share {
  count = 0;
  readonly index: Uint32Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly records: Buffer;
  readonly results: Int32Array;
  readonly dontFragment: Uint8Array;
  readonly segmentSizes: Uint32Array;
  constructor(capacity: number) {
    this.index = new Uint32Array(capacity);
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.records = Buffer.alloc(capacity * ADDR_RECORD_LEN);
    this.results = new Int32Array(capacity);
    this.dontFragment = new Uint8Array(capacity);
    this.segmentSizes = new Uint32Array(capacity);
  }
}

export class SourcePortPool implements DatagramPort {
  private readonly shares: Share[];

  private constructor(
    private readonly main: UdpSocket,
    private readonly senders: UdpSocket[],
  ) {
    const capacity = native().BATCH_MAX;
    this.shares = senders.map(() => new Share(capacity));
  }

  /** count sockets on random high ports of address, beside main. */
  static open(main: UdpSocket, address: string, count: number, dontFragment: boolean | 'inherit'): SourcePortPool {
    const senders: UdpSocket[] = [];
    try {
      while (senders.length < count) senders.push(openOnRandomPort(address, dontFragment));
    } catch (error) {
      for (const sender of senders) sender.close();
      throw error;
    }
    return new SourcePortPool(main, senders);
  }

  sourcePorts(): number[] {
    return this.senders.map((s) => s.localAddress().port);
  }

  recvBatch(slab: Buffer, slotSize: number, headroom: number, max: number, lengths: Uint32Array, records: Buffer, segmentSizes?: Uint32Array): number {
    return this.main.recvBatch(slab, slotSize, headroom, max, lengths, records, segmentSizes);
  }

  pathMtu(records: Buffer, offset: number): number {
    return this.main.pathMtu(records, offset);
  }

  // HOT PATH: each datagram to the socket its inner flow hashes to, one sendmmsg per socket.
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
    const shares = this.shares;
    for (let i = 0; i < count; i++) {
      const frame = offsets[i] + VXLAN_HEADER_LEN;
      const flowLength = Math.min(lengths[i] - VXLAN_HEADER_LEN, FLOW_BYTES);
      const share = shares[flowHash(slab, frame, flowLength) % shares.length];
      const k = share.count++;
      share.index[k] = i;
      share.offsets[k] = offsets[i];
      share.lengths[k] = lengths[i];
      share.dontFragment[k] = dontFragment === undefined ? 0 : dontFragment[i];
      share.segmentSizes[k] = segmentSizes === undefined ? 0 : segmentSizes[i];
      const from = i * ADDR_RECORD_LEN;
      const to = k * ADDR_RECORD_LEN;
      for (let b = 0; b < ADDR_RECORD_LEN; b++) share.records[to + b] = records[from + b];
    }
    let sent = 0;
    for (let s = 0; s < shares.length; s++) {
      const share = shares[s];
      if (share.count === 0) continue;
      sent += this.senders[s].sendBatch(
        slab,
        share.offsets,
        share.lengths,
        share.records,
        share.count,
        share.results,
        dontFragment === undefined ? undefined : share.dontFragment,
        share.segmentSizes,
      );
      for (let k = 0; k < share.count; k++) results[share.index[k]] = share.results[k];
      share.count = 0;
    }
    return sent;
  }

  close(): void {
    for (const sender of this.senders) sender.close();
  }
}

function openOnRandomPort(address: string, dontFragment: boolean | 'inherit'): UdpSocket {
  for (let attempt = 0; ; attempt++) {
    const port = EPHEMERAL_FIRST + Math.floor(Math.random() * EPHEMERAL_COUNT);
    try {
      return UdpSocket.open(address, port, dontFragment, SENDER_RECEIVE_BUFFER);
    } catch (error) {
      if (!(isErrnoError(error) && error.code === 'EADDRINUSE') || attempt >= 50) throw error;
    }
  }
}
