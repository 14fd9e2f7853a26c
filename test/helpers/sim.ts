// In-memory devices for simulating several VTEPs in one process: a fake TAP
// (frames queued from the "bridge", frames written back to it) and a fake
// underlay that carries datagrams between fake sockets by address.

import { ADDR_RECORD_LEN, addressRecord } from '../../src/core/address';
import { ManualClock } from '../../src/core/clock';
import { Engine } from '../../src/core/engine';
import { Fdb } from '../../src/core/fdb';
import { Network } from '../../src/core/network';
import type { FrameBatch, SendQueue, Slab } from '../../src/core/batches';
import { SEND_DONE, type DatagramPort, type FramePort, type SendOutcome } from '../../src/core/ports';
import { RemoteTable } from '../../src/core/remotes';

export const VXLAN_PORT = 4789;

export class FakeTap implements FramePort {
  /** Frames the bridge hands to the TAP, waiting for the engine to read them. */
  readonly fromBridge: Buffer[] = [];
  /** Frames the engine wrote to the TAP (towards the bridge). */
  readonly toBridge: Buffer[] = [];

  readFrames(slab: Slab): number {
    let n = 0;
    while (n < slab.slots && this.fromBridge.length > 0) {
      const frame = this.fromBridge.shift() as Buffer;
      frame.copy(slab.bytes, n * slab.slotSize + slab.headroom);
      slab.lengths[n++] = frame.length;
    }
    return n;
  }

  writeFrames(batch: FrameBatch): number {
    for (let i = 0; i < batch.count; i++) {
      this.toBridge.push(Buffer.from(batch.bytes.subarray(batch.offsets[i], batch.offsets[i] + batch.lengths[i])));
      batch.results[i] = 0;
    }
    return batch.count;
  }
}

interface Datagram {
  bytes: Buffer;
  source: Buffer;
  /** For a run of equal datagrams handed over as one (UDP_GRO): their size. */
  segmentSize?: number;
}

export class FakeUnderlay {
  private readonly sockets = new Map<string, FakeSocket>();
  /** Every datagram carried, for assertions: [from, to]. */
  readonly log: { from: string; to: string; bytes: Buffer }[] = [];

  socket(address: string): FakeSocket {
    const socket = new FakeSocket(address, this);
    this.sockets.set(address, socket);
    return socket;
  }

  deliver(from: FakeSocket, toRecord: Buffer, bytes: Buffer): number {
    const to = [...this.sockets.values()].find((s) => s.record.compare(toRecord, 0, 16, 0, 16) === 0);
    this.log.push({ from: from.address, to: to?.address ?? '?', bytes });
    if (!to) return 113; // EHOSTUNREACH
    to.inbox.push({ bytes, source: addressRecord(from.address, 49_152) });
    return 0;
  }
}

export class FakeSocket implements DatagramPort {
  readonly inbox: Datagram[] = [];
  readonly record: Buffer;

  constructor(
    readonly address: string,
    private readonly underlay: FakeUnderlay,
  ) {
    this.record = addressRecord(address, VXLAN_PORT);
  }

  /** Puts a run of equal-size datagrams (the last may be shorter) in the inbox as one, as UDP_GRO does. */
  injectRun(datagrams: Buffer[], from: string): void {
    this.inbox.push({ bytes: Buffer.concat(datagrams), source: addressRecord(from, 49_152), segmentSize: datagrams[0].length });
  }

  /** Puts raw bytes in this socket's inbox as if sent from `from`. */
  inject(bytes: Buffer, from: string): void {
    this.inbox.push({ bytes, source: addressRecord(from, 49_152) });
  }

  recvBatch(slab: Slab): number {
    let n = 0;
    while (n < slab.slots && this.inbox.length > 0) {
      const datagram = this.inbox.shift() as Datagram;
      datagram.bytes.copy(slab.bytes, n * slab.slotSize + slab.headroom);
      datagram.source.copy(slab.records, n * ADDR_RECORD_LEN);
      if (slab.segmentSizes) slab.segmentSizes[n] = datagram.segmentSize ?? 0;
      slab.lengths[n++] = datagram.bytes.length;
    }
    return n;
  }

  /** Delivers every datagram; a train (UDP GSO) arrives as the datagrams the kernel would cut it into. */
  sendBatch(queue: SendQueue): SendOutcome {
    for (let i = 0; i < queue.count; i++) {
      const to = queue.records.subarray(i * ADDR_RECORD_LEN, (i + 1) * ADDR_RECORD_LEN);
      const start = queue.offsets[i];
      const end = start + queue.lengths[i];
      const size = queue.segmentSizes[i] > 0 ? queue.segmentSizes[i] : queue.lengths[i];
      queue.results[i] = 0;
      for (let offset = start; offset < end; offset += size) {
        const errno = this.underlay.deliver(this, to, Buffer.from(queue.bytes.subarray(offset, Math.min(offset + size, end))));
        if (errno !== 0) queue.results[i] = errno;
      }
    }
    return SEND_DONE;
  }
}

/** One simulated host: a TAP, a socket and an engine serving one VNI. */
export class SimVtep {
  readonly tap = new FakeTap();
  readonly socket: FakeSocket;
  readonly remotes = new RemoteTable(VXLAN_PORT);
  readonly engine: Engine;
  readonly network: Network;

  constructor(
    readonly address: string,
    underlay: FakeUnderlay,
    vni: number,
    peers: string[],
    readonly clock = new ManualClock(),
    options: { learnRemotes?: boolean; maxFrameSize?: number; socketGro?: boolean } = {},
  ) {
    this.socket = underlay.socket(address);
    this.engine = new Engine({
      socket: this.socket,
      remotes: this.remotes,
      clock,
      batchSize: 16,
      maxFrameSize: options.maxFrameSize ?? 1518,
      learnRemotes: options.learnRemotes ?? false,
      socketGro: options.socketGro,
    });
    this.network = new Network(vni, new Fdb({ clock }), this.tap);
    for (const peer of peers) this.network.addPeer(this.remotes.add(peer).id);
    this.engine.addNetwork(this.network);
  }

  /** A frame arrives from the local bridge and the engine forwards it. */
  sendFromBridge(frame: Buffer): void {
    this.tap.fromBridge.push(frame);
    this.engine.drainTap(this.network);
  }

  /** The engine processes whatever the underlay delivered. */
  receive(): void {
    this.engine.drainSocket();
  }
}

export function ethernetFrame(dst: string, src: string, payload = 'hello', etherType = 0x0800): Buffer {
  const header = Buffer.alloc(14);
  Buffer.from(dst.split(':').map((h) => parseInt(h, 16))).copy(header, 0);
  Buffer.from(src.split(':').map((h) => parseInt(h, 16))).copy(header, 6);
  header.writeUInt16BE(etherType, 12);
  return Buffer.concat([header, Buffer.from(payload.padEnd(46, '.'))]);
}
