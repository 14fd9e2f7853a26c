// Flow entropy in the outer UDP source port (RFC 7348 section 5). The daemon
// receives on its VXLAN port and sends from a few extra sockets bound to
// random ports in 49152-65535; each datagram leaves from the socket its inner
// flow hashes to, so one flow keeps one source port (no reordering) and ECMP
// routers in the underlay can spread different flows over their paths.
//
// The pool is a DatagramPort: the engine does not know there is more than one
// socket. Receiving, GRO and path MTU stay with the main socket.

import { constants } from 'node:os';
import { ADDR_RECORD_LEN } from '../core/address';
import { SendQueue, type Slab } from '../core/batches';
import { flowHash } from '../core/flow';
import { VXLAN_HEADER_LEN } from '../core/vxlan';
import { SEND_DONE, SEND_GSO_DISABLED, type DatagramPort, type SendOutcome } from '../core/ports';
import { isErrnoError, native } from './native';
import { UdpSocket } from './udp';

const EPHEMERAL_FIRST = 49_152;
const EPHEMERAL_COUNT = 65_536 - EPHEMERAL_FIRST;
/** The senders never receive: the kernel's smallest buffer is enough. */
const SENDER_RECEIVE_BUFFER = 1;
/** Bytes of the inner frame that identify its flow (Ethernet, VLAN, IPv6, ports). */
const FLOW_BYTES = 128;

/** One socket's share of a batch, preallocated; index[k] is the entry of the caller's queue. */
class Share extends SendQueue {
  readonly index: Uint32Array;
  /** The last send met a full socket buffer. */
  blocked = false;
  constructor(
    capacity: number,
    readonly sender: UdpSocket,
  ) {
    super(capacity, Buffer.alloc(0));
    this.index = new Uint32Array(capacity);
  }
}

export class SourcePortPool implements DatagramPort {
  private readonly shares: Share[];
  gsoError = 0;

  private constructor(
    private readonly main: UdpSocket,
    private readonly senders: UdpSocket[],
    capacity: number,
  ) {
    this.shares = senders.map((sender) => new Share(capacity, sender));
  }

  /** A pool over sockets already open (tests give UdpSocket.over sockets); capacity: datagrams per share. */
  static over(main: UdpSocket, senders: UdpSocket[], capacity: number): SourcePortPool {
    return new SourcePortPool(main, senders, capacity);
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
    return new SourcePortPool(main, senders, native().BATCH_MAX);
  }

  sourcePorts(): number[] {
    return this.senders.map((s) => s.localAddress().port);
  }

  recvBatch(slab: Slab): number {
    return this.main.recvBatch(slab);
  }

  pathMtu(records: Buffer, offset: number): number {
    return this.main.pathMtu(records, offset);
  }

  // HOT PATH: each datagram to the socket its inner flow hashes to, one sendmmsg per socket.
  sendBatch(queue: SendQueue): SendOutcome {
    const shares = this.shares;
    const bytes = queue.bytes;
    for (let i = 0; i < queue.count; i++) {
      const frame = queue.offsets[i] + VXLAN_HEADER_LEN;
      const flowLength = Math.min(queue.lengths[i] - VXLAN_HEADER_LEN, FLOW_BYTES);
      const share = shares[flowHash(bytes, frame, flowLength) % shares.length];
      if (share.count === share.capacity) this.sendShare(share, queue);
      const k = share.count++;
      share.index[k] = i;
      share.offsets[k] = queue.offsets[i];
      share.lengths[k] = queue.lengths[i];
      share.dontFragment[k] = queue.dontFragment[i];
      share.segmentSizes[k] = queue.segmentSizes[i];
      const from = i * ADDR_RECORD_LEN;
      const to = k * ADDR_RECORD_LEN;
      for (let b = 0; b < ADDR_RECORD_LEN; b++) share.records[to + b] = queue.records[from + b];
    }
    const gsoBefore = this.gsoError;
    for (let s = 0; s < shares.length; s++) this.sendShare(shares[s], queue);
    return this.gsoError !== 0 && gsoBefore === 0 ? SEND_GSO_DISABLED : SEND_DONE;
  }

  private sendShare(share: Share, queue: SendQueue): void {
    if (share.count === 0) return;
    share.bytes = queue.bytes;
    share.perDatagramDf = queue.perDatagramDf;
    const sender = share.sender;
    // Each sender keeps its own GSO state; the pool reports the first refusal.
    if (sender.sendBatch(share) === SEND_GSO_DISABLED && this.gsoError === 0) this.gsoError = sender.gsoError;
    share.blocked = false;
    for (let k = 0; k < share.count; k++) {
      const errno = share.results[k];
      queue.results[share.index[k]] = errno;
      if (errno === EAGAIN) share.blocked = true;
    }
    share.count = 0;
  }

  /** Calls back once every sender whose buffer was full is writable again. */
  waitWritable(callback: () => void): void {
    let waiting = 0;
    const done = () => {
      if (--waiting === 0) callback();
    };
    for (const share of this.shares) {
      if (!share.blocked) continue;
      waiting++;
      share.sender.waitWritable(done);
    }
    if (waiting === 0) callback();
  }

  close(): void {
    for (const sender of this.senders) sender.close();
  }
}

const EAGAIN = constants.errno.EAGAIN;

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
