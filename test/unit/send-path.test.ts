// The sending side's policy, over fakes (no root, no addon): the UDP port
// owning UDP GSO (a refused train is retried once, then GSO is off for good
// and trains are split), DF set per run with one setsockopt per change, and
// the engine's backpressure when the socket buffer is full (EAGAIN): what was
// not sent waits, the TAP is not read, and both resume when writable.

import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { addressRecord } from '../../src/core/address';
import { SendQueue } from '../../src/core/batches';
import { ManualClock } from '../../src/core/clock';
import { Engine } from '../../src/core/engine';
import { Fdb } from '../../src/core/fdb';
import { Network } from '../../src/core/network';
import { SEND_DONE, SEND_GSO_DISABLED, type DatagramPort, type SendOutcome } from '../../src/core/ports';
import { RemoteTable } from '../../src/core/remotes';
import { SourcePortPool } from '../../src/io/source-ports';
import { UdpSocket, type UdpSyscalls } from '../../src/io/udp';
import { FakeTap, ethernetFrame } from '../helpers/sim';

const { EAGAIN, EINVAL, EIO, EMSGSIZE } = constants.errno;
const PEER = '10.0.1.42';

/** A kernel behind UdpSocket: it records every send, and may refuse UDP GSO. */
class FakeKernel implements UdpSyscalls {
  readonly BATCH_MAX = 256;
  /** Datagrams on the wire, as the kernel would cut trains. */
  readonly wire: Buffer[] = [];
  /** One entry per datagram handed over with UDP_SEGMENT: its segment size. */
  readonly gsoAttempts: number[] = [];
  readonly dfChanges: boolean[] = [];
  calls = 0;
  /** Errno for every train (0: GSO works). */
  refuseGso = 0;
  outerPathMtu = 1500;

  sendBatch(
    _fd: number,
    _family: 4 | 6,
    bytes: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    _records: Buffer,
    results: Int32Array,
    segmentSizes: Uint32Array | null,
    first: number,
    end: number,
  ): number {
    this.calls++;
    let sent = 0;
    for (let i = first; i < end; i++) {
      const segment = segmentSizes === null ? 0 : segmentSizes[i];
      const train = segment > 0 && segment < lengths[i];
      if (train) this.gsoAttempts.push(segment);
      if (train && this.refuseGso !== 0) {
        results[i] = this.refuseGso;
        continue;
      }
      const size = train ? segment : lengths[i];
      for (let at = offsets[i]; at < offsets[i] + lengths[i]; at += size) {
        this.wire.push(Buffer.from(bytes.subarray(at, Math.min(at + size, offsets[i] + lengths[i]))));
      }
      results[i] = 0;
      sent++;
    }
    return sent;
  }

  udpSetDontFragment(_fd: number, on: boolean): void {
    this.dfChanges.push(on);
  }

  pathMtu(): number {
    return this.outerPathMtu;
  }
}

const network = new Network(100, new Fdb({ clock: new ManualClock() }), new FakeTap());
const record = addressRecord(PEER, 4789);

/** A queue over bytes 0, 1, 2, ... with entries [length, segmentSize]. */
function queueOf(entries: [number, number][]): SendQueue {
  const total = entries.reduce((sum, [length]) => sum + length, 0);
  const queue = new SendQueue(16, Buffer.from(Array.from({ length: total }, (_, i) => i & 0xff)));
  let offset = 0;
  for (const [length, segment] of entries) {
    queue.add(network, 0, record, offset, length, segment, segment > 0 ? Math.ceil(length / segment) : 1, 0);
    offset += length;
  }
  return queue;
}

describe('the UDP port and UDP GSO', () => {
  it('sends a train in one datagram to the kernel while GSO works', () => {
    const kernel = new FakeKernel();
    const socket = UdpSocket.over(3, '10.0.1.41', kernel);
    const queue = queueOf([[250, 100]]);
    expect(socket.sendBatch(queue)).toBe(SEND_DONE);
    expect(kernel.gsoAttempts).toEqual([100]);
    expect(kernel.wire.map((d) => d.length)).toEqual([100, 100, 50]);
    expect(socket.gsoError).toBe(0);
  });

  it('retries a refused train once, then turns GSO off once, says so once, and still delivers every datagram', () => {
    const kernel = new FakeKernel();
    kernel.refuseGso = EIO;
    const socket = UdpSocket.over(3, '10.0.1.41', kernel);
    const queue = queueOf([
      [60, 0],
      [250, 100],
      [160, 80],
    ]);
    expect(socket.sendBatch(queue)).toBe(SEND_GSO_DISABLED);
    expect(socket.gsoError).toBe(EIO);
    // Both trains in the batch, the first once more alone; then no more GSO.
    expect(kernel.gsoAttempts).toEqual([100, 80, 100]);
    expect([...queue.results.subarray(0, 3)]).toEqual([0, 0, 0]);
    expect(kernel.wire.map((d) => d.length)).toEqual([60, 100, 100, 50, 80, 80]);
    expect(Buffer.concat(kernel.wire)).toEqual(queue.bytes);

    // From now on trains are split here, and the change is not reported again.
    kernel.wire.length = 0;
    const next = queueOf([[250, 100]]);
    expect(socket.sendBatch(next)).toBe(SEND_DONE);
    expect(kernel.gsoAttempts).toHaveLength(3);
    expect(kernel.wire.map((d) => d.length)).toEqual([100, 100, 50]);
    expect(next.results[0]).toBe(0);
  });

  it('keeps GSO on when the retry goes through', () => {
    const kernel = new FakeKernel();
    kernel.refuseGso = EIO;
    const socket = UdpSocket.over(3, '10.0.1.41', kernel);
    const original = kernel.sendBatch.bind(kernel);
    // Refused once only: the first call fails, the retry is taken.
    kernel.sendBatch = (...args) => {
      const n = original(...args);
      kernel.refuseGso = 0;
      return n;
    };
    const queue = queueOf([[250, 100]]);
    expect(socket.sendBatch(queue)).toBe(SEND_DONE);
    expect(socket.gsoError).toBe(0);
    expect(kernel.gsoAttempts).toEqual([100, 100]);
    expect(queue.results[0]).toBe(0);
  });

  it('reports EINVAL for a segment larger than the path as EMSGSIZE, not as a GSO refusal', () => {
    const kernel = new FakeKernel();
    kernel.refuseGso = EINVAL;
    kernel.outerPathMtu = 120; // 100 + 8 (UDP) + 20 (IPv4) does not fit
    const socket = UdpSocket.over(3, '10.0.1.41', kernel);
    const queue = queueOf([[250, 100]]);
    expect(socket.sendBatch(queue)).toBe(SEND_DONE);
    expect(queue.results[0]).toBe(EMSGSIZE);
    expect(socket.gsoError).toBe(0);
    expect(kernel.gsoAttempts).toEqual([100]);
  });

  it('sets DF per run of equal datagrams, with one setsockopt per change of mode', () => {
    const kernel = new FakeKernel();
    const socket = UdpSocket.over(3, '10.0.1.41', kernel);
    const queue = queueOf([
      [10, 0],
      [10, 0],
      [10, 0],
      [10, 0],
      [10, 0],
    ]);
    queue.perDatagramDf = true;
    queue.dontFragment.set([1, 1, 0, 0, 1]);
    socket.sendBatch(queue);
    expect(kernel.dfChanges).toEqual([true, false, true]);
    expect(kernel.calls).toBe(3);
    // The socket is still in DF mode: the next batch's first run needs no change.
    socket.sendBatch(queue);
    expect(kernel.dfChanges).toEqual([true, false, true, false, true]);
    expect(kernel.wire).toHaveLength(10);
  });
});

describe('the source-port pool and UDP GSO', () => {
  it('lets each socket turn GSO off by itself, and says so once for the pool', () => {
    const kernels = [new FakeKernel(), new FakeKernel(), new FakeKernel()];
    for (const kernel of kernels) kernel.refuseGso = EIO;
    const senders = kernels.map((kernel, i) => UdpSocket.over(10 + i, '10.0.1.41', kernel));
    const pool = SourcePortPool.over(UdpSocket.over(9, '10.0.1.41', new FakeKernel()), senders, 256);
    // Eight trains of different inner flows (the flow hash reads the bytes behind the VXLAN header).
    const queue = new SendQueue(16, Buffer.alloc(8 * 300));
    for (let i = 0; i < 8; i++) {
      queue.bytes.fill(i * 37 + 1, i * 300, (i + 1) * 300);
      queue.add(network, 0, record, i * 300, 300, 100, 3, 0);
    }
    expect(pool.sendBatch(queue)).toBe(SEND_GSO_DISABLED);
    expect(pool.gsoError).toBe(EIO);
    expect([...queue.results.subarray(0, 8)]).toEqual(new Array(8).fill(0));
    const used = kernels.filter((kernel) => kernel.wire.length > 0);
    expect(used.length).toBeGreaterThan(1);
    expect(kernels.reduce((sum, kernel) => sum + kernel.wire.length, 0)).toBe(24);
    // A socket that met no train yet still tries GSO later, on its own; the pool does not say it again.
    for (const kernel of kernels) kernel.wire.length = 0;
    expect(pool.sendBatch(queue)).toBe(SEND_DONE);
    expect(kernels.reduce((sum, kernel) => sum + kernel.wire.length, 0)).toBe(24);
  });
});

/** A socket whose buffer holds `room` datagrams; then EAGAIN until drained and writable again. */
class FullSocket implements DatagramPort {
  readonly delivered: Buffer[] = [];
  inBuffer = 0;
  writable: (() => void) | undefined;
  constructor(private readonly room: number) {}
  recvBatch(): number {
    return 0;
  }
  sendBatch(queue: SendQueue): SendOutcome {
    for (let k = 0; k < queue.count; k++) {
      if (this.inBuffer === this.room) {
        queue.results.fill(EAGAIN, k, queue.count);
        break;
      }
      this.inBuffer++;
      this.delivered.push(Buffer.from(queue.bytes.subarray(queue.offsets[k], queue.offsets[k] + queue.lengths[k])));
      queue.results[k] = 0;
    }
    return SEND_DONE;
  }
  waitWritable(callback: () => void): void {
    this.writable = callback;
  }
  /** The kernel sends what it holds; the event loop reports the socket writable. */
  drain(): void {
    this.inBuffer = 0;
    const callback = this.writable;
    this.writable = undefined;
    callback?.();
  }
}

class PausableTap extends FakeTap {
  paused = false;
  pauseReading(): void {
    this.paused = true;
  }
  resumeReading(): void {
    this.paused = false;
  }
}

describe('the engine when the socket buffer is full', () => {
  it('keeps what was not sent, stops reading the TAP, and resumes both when the socket is writable', () => {
    const clock = new ManualClock();
    const socket = new FullSocket(10);
    const remotes = new RemoteTable(4789);
    const engine = new Engine({ socket, remotes, clock, batchSize: 16, maxFrameSize: 1518, learnRemotes: false });
    const tap = new PausableTap();
    const net = new Network(100, new Fdb({ clock }), tap);
    net.addPeer(remotes.add(PEER).id);
    engine.addNetwork(net);

    const frames = Array.from({ length: 40 }, (_, i) => ethernetFrame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a', `frame ${i}`));
    tap.fromBridge.push(...frames);
    engine.drainTap(net);
    // One batch of 16 read: 10 sent, 6 waiting; the TAP is paused with 24 frames still in it.
    expect(socket.delivered).toHaveLength(10);
    expect(tap.paused).toBe(true);
    expect(tap.fromBridge).toHaveLength(24);
    engine.drainTap(net); // a wake-up that was already queued reads nothing
    expect(tap.fromBridge).toHaveLength(24);

    socket.drain();
    expect(socket.delivered).toHaveLength(16);
    expect(tap.paused).toBe(false);
    while (tap.fromBridge.length > 0 || socket.writable) {
      engine.drainTap(net);
      socket.drain();
    }
    expect(socket.delivered.map((d) => d.subarray(8))).toEqual(frames);
    expect(net.counters.txDatagrams).toBe(40);
    expect(net.counters.drops.socket_send).toBe(0);
  });

  it('drops and counts datagrams when the socket has no way to say it is writable again', () => {
    const clock = new ManualClock();
    const full = new FullSocket(2);
    const socket: DatagramPort = { recvBatch: () => 0, sendBatch: (q) => full.sendBatch(q) };
    const remotes = new RemoteTable(4789);
    const errors: number[] = [];
    const engine = new Engine({ socket, remotes, clock, batchSize: 16, maxFrameSize: 1518, learnRemotes: false, onIoError: (_w, errno) => errors.push(errno) });
    const tap = new FakeTap();
    const net = new Network(100, new Fdb({ clock }), tap);
    net.addPeer(remotes.add(PEER).id);
    engine.addNetwork(net);
    tap.fromBridge.push(...Array.from({ length: 5 }, () => ethernetFrame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a')));
    engine.drainTap(net);
    expect(net.counters.txDatagrams).toBe(2);
    expect(net.counters.drops.socket_send).toBe(3);
    expect(errors).toEqual([EAGAIN]);
  });
});

