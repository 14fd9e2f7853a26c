// The native addon against the real kernel: TAP open and errors, batched UDP
// send/receive on loopback. Runs as root (CI is root).

import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR_RECORD_LEN, addressRecord, recordAddress } from '../../src/core/address';
import { SendQueue, Slab } from '../../src/core/batches';
import { ManualClock } from '../../src/core/clock';
import { Fdb } from '../../src/core/fdb';
import { Network } from '../../src/core/network';
import { SEND_DONE } from '../../src/core/ports';
import { native, isErrnoError } from '../../src/io/native';
import { TapDevice } from '../../src/io/tap';
import { UdpSocket } from '../../src/io/udp';

const opened: { close(): void }[] = [];
/** The network a queued datagram is counted for; these tests read only the socket's results. */
const network = new Network(100, new Fdb({ clock: new ManualClock() }), { readFrames: () => 0, writeFrames: () => 0 });
afterEach(() => {
  for (const thing of opened.splice(0)) thing.close();
});

function linkExists(name: string): boolean {
  try {
    execFileSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('TAP device', () => {
  it('opens a TAP with the chosen name, and the kernel removes it when closed', () => {
    const name = `tvt${randomBytes(3).toString('hex')}`;
    const tap = TapDevice.open(name, false);
    opened.push(tap);
    expect(tap.name).toBe(name);
    expect(linkExists(name)).toBe(true);
    // The TAP is down: nothing to read, and reading does not block.
    expect(tap.readFrames(new Slab(4, 2048, 64))).toBe(0);
    tap.close();
    expect(linkExists(name)).toBe(false);
  });

  it('lets the kernel choose a name', () => {
    const tap = TapDevice.open('', false);
    opened.push(tap);
    expect(tap.name).toMatch(/^tap\d+$/);
  });

  it('reports the errno name when the name is taken by another TAP', () => {
    const name = `tvt${randomBytes(3).toString('hex')}`;
    opened.push(TapDevice.open(name, false));
    let error: unknown;
    try {
      opened.push(TapDevice.open(name, false));
    } catch (e) {
      error = e;
    }
    expect(isErrnoError(error) && error.code).toBe('EBUSY');
  });

  it('throws a TypeError, not a crash, on bad arguments', () => {
    const addon = native();
    expect(() => addon.readFrames(-1, Buffer.alloc(10), 2048, 64, 4, new Uint32Array(4))).toThrow(TypeError);
    expect(() => addon.tapOpen('x'.repeat(40), false)).toThrow(TypeError);
  });

  it('checks the element type of every typed array: a wrong one is a TypeError naming the argument', () => {
    const addon = native() as unknown as Record<string, (...args: unknown[]) => unknown>;
    const slab = Buffer.alloc(4 * 2048);
    const u32 = new Uint32Array(4);
    const i32 = new Int32Array(4);
    const records = Buffer.alloc(4 * ADDR_RECORD_LEN);
    // Lengths as Int32Array, Uint8Array, Float64Array instead of Uint32Array.
    expect(() => addon.readFrames(0, slab, 2048, 64, 4, new Int32Array(4))).toThrow(/readFrames.*argument 6/);
    expect(() => addon.readFrames(0, slab, 2048, 64, 4, new Uint8Array(16))).toThrow(TypeError);
    expect(() => addon.writeFrames(0, slab, u32, u32, 1, new Float64Array(4), false)).toThrow(/writeFrames.*argument 6/);
    expect(() => addon.writeFrames(0, slab, new Uint16Array(8), u32, 1, i32, false)).toThrow(/argument 3/);
    expect(() => addon.writeFrames(0, slab, u32, u32, 1, i32, 'yes')).toThrow(/argument 7/);
    expect(() => addon.recvBatch(0, slab, 2048, 64, 4, u32, records, new Int32Array(4))).toThrow(/recvBatch.*argument 8/);
    expect(() => addon.sendBatch(0, 4, slab, new Uint8Array(4), u32, records, i32, null, 0, 1)).toThrow(/sendBatch.*argument 4/);
    expect(() => addon.sendBatch(0, 4, slab, u32, u32, records, u32, null, 0, 1)).toThrow(/argument 7/);
    expect(() => addon.sendBatch(0, 4, slab, u32, u32, new Uint16Array(40), i32, null, 0, 1)).toThrow(/argument 6/);
    expect(() => addon.segmentTcp(slab, 0, 100, 1000, 1400, Buffer.alloc(8), slab, 0, 100, new Uint16Array(3))).toThrow(/argument 10/);
    expect(() => addon.finishChecksum(new Float32Array(4), 0, 1, 0, 0)).toThrow(TypeError);
    // Missing arguments too.
    expect(() => addon.sendBatch(0, 4, slab, u32, u32, records, i32)).toThrow(TypeError);
  });
});

describe('batched UDP', () => {
  it('sends a batch with sendmmsg and receives it with recvmmsg, with sender addresses', () => {
    const receiver = UdpSocket.open('127.0.0.1', 0, false);
    const sender = UdpSocket.open('127.0.0.1', 0, false);
    opened.push(receiver, sender);
    const to = receiver.localAddress();
    const from = sender.localAddress();

    const count = 10;
    const queue = new SendQueue(count, Buffer.alloc(count * 256));
    const record = addressRecord(to.address, to.port);
    for (let i = 0; i < count; i++) {
      queue.add(network, 0, record, i * 256 + 64, 10 + i, 0, 1, 0);
      queue.bytes.fill(i, queue.offsets[i], queue.offsets[i] + queue.lengths[i]);
    }
    expect(sender.sendBatch(queue)).toBe(SEND_DONE);
    expect([...queue.results]).toEqual(new Array(count).fill(0));

    const inSlab = new Slab(16, 512, 64);
    const n = receiver.recvBatch(inSlab);
    expect(n).toBe(count);
    for (let i = 0; i < count; i++) {
      expect(inSlab.lengths[i]).toBe(10 + i);
      expect(inSlab.bytes[i * 512 + 64]).toBe(i);
      expect(recordAddress(inSlab.records, i * ADDR_RECORD_LEN)).toBe('127.0.0.1');
      expect(inSlab.records.readUInt16BE(i * ADDR_RECORD_LEN + 16)).toBe(from.port);
    }
    expect(receiver.recvBatch(inSlab)).toBe(0);
  });

  it('reports a datagram larger than its slot so it can be counted as oversize', () => {
    const receiver = UdpSocket.open('127.0.0.1', 0, false);
    const sender = UdpSocket.open('127.0.0.1', 0, false);
    opened.push(receiver, sender);
    const to = receiver.localAddress();
    const queue = new SendQueue(1, Buffer.alloc(1000));
    queue.add(network, 0, addressRecord(to.address, to.port), 0, 1000, 0, 1, 0);
    sender.sendBatch(queue);
    const slab = new Slab(1, 512, 64);
    expect(receiver.recvBatch(slab)).toBe(1);
    expect(slab.lengths[0]).toBeGreaterThan(512 - 64);
  });

  it('puts the errno of a failed datagram in its result and sends the rest', () => {
    const receiver = UdpSocket.open('127.0.0.1', 0, false);
    const sender = UdpSocket.open('127.0.0.1', 0, false);
    opened.push(receiver, sender);
    const to = receiver.localAddress();
    const queue = new SendQueue(3, Buffer.alloc(100));
    queue.add(network, 0, addressRecord(to.address, to.port), 0, 50, 0, 1, 0);
    queue.add(network, 0, addressRecord('127.0.0.1', 0), 0, 50, 0, 1, 0); // port 0: EINVAL
    queue.add(network, 0, addressRecord(to.address, to.port), 0, 50, 0, 1, 0);
    sender.sendBatch(queue);
    expect(queue.results[0]).toBe(0);
    expect(queue.results[1]).not.toBe(0);
    expect(queue.results[2]).toBe(0);
  });

  it('says through the event loop when a socket is writable, while it keeps watching it for datagrams', async () => {
    const socket = UdpSocket.open('127.0.0.1', 0, false);
    const sender = UdpSocket.open('127.0.0.1', 0, false);
    opened.push(socket, sender);
    const readable = new Promise<number>((resolve) => socket.watch(resolve));
    // One poller serves both: waiting for writability does not stop the readable watch.
    await new Promise<void>((resolve) => socket.waitWritable(resolve));
    const to = socket.localAddress();
    const queue = new SendQueue(1, Buffer.alloc(20));
    queue.add(network, 0, addressRecord(to.address, to.port), 0, 20, 0, 1, 0);
    sender.sendBatch(queue);
    expect(await readable).toBe(0);
    expect(socket.recvBatch(new Slab(1, 512, 64))).toBe(1);
  });

  it('fails to bind a port in use with EADDRINUSE', () => {
    const first = UdpSocket.open('127.0.0.1', 0, false);
    opened.push(first);
    let error: unknown;
    try {
      opened.push(UdpSocket.open('127.0.0.1', first.localAddress().port, false));
    } catch (e) {
      error = e;
    }
    expect(isErrnoError(error) && error.code).toBe('EADDRINUSE');
  });
});
