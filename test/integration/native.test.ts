// The native addon against the real kernel: TAP open and errors, batched UDP
// send/receive on loopback. Runs as root (CI is root).

import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { ADDR_RECORD_LEN, addressRecord, recordAddress } from '../../src/core/address';
import { native, isErrnoError } from '../../src/io/native';
import { TapDevice } from '../../src/io/tap';
import { UdpSocket } from '../../src/io/udp';

const opened: { close(): void }[] = [];
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
    const slab = Buffer.alloc(4 * 2048);
    const lengths = new Uint32Array(4);
    // The TAP is down: nothing to read, and reading does not block.
    expect(tap.readFrames(slab, 2048, 64, 4, lengths)).toBe(0);
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
});

describe('batched UDP', () => {
  it('sends a batch with sendmmsg and receives it with recvmmsg, with sender addresses', () => {
    const receiver = UdpSocket.open('127.0.0.1', 0, false);
    const sender = UdpSocket.open('127.0.0.1', 0, false);
    opened.push(receiver, sender);
    const to = receiver.localAddress();
    const from = sender.localAddress();

    const count = 10;
    const slab = Buffer.alloc(count * 256);
    const offsets = new Uint32Array(count);
    const lengths = new Uint32Array(count);
    const records = Buffer.alloc(count * ADDR_RECORD_LEN);
    for (let i = 0; i < count; i++) {
      offsets[i] = i * 256 + 64;
      lengths[i] = 10 + i;
      slab.fill(i, offsets[i], offsets[i] + lengths[i]);
      addressRecord(to.address, to.port).copy(records, i * ADDR_RECORD_LEN);
    }
    const results = new Int32Array(count);
    expect(sender.sendBatch(slab, offsets, lengths, records, count, results)).toBe(count);
    expect([...results]).toEqual(new Array(count).fill(0));

    const inSlab = Buffer.alloc(16 * 512);
    const inLengths = new Uint32Array(16);
    const inRecords = Buffer.alloc(16 * ADDR_RECORD_LEN);
    const n = receiver.recvBatch(inSlab, 512, 64, 16, inLengths, inRecords);
    expect(n).toBe(count);
    for (let i = 0; i < count; i++) {
      expect(inLengths[i]).toBe(10 + i);
      expect(inSlab[i * 512 + 64]).toBe(i);
      expect(recordAddress(inRecords, i * ADDR_RECORD_LEN)).toBe('127.0.0.1');
      expect(inRecords.readUInt16BE(i * ADDR_RECORD_LEN + 16)).toBe(from.port);
    }
    expect(receiver.recvBatch(inSlab, 512, 64, 16, inLengths, inRecords)).toBe(0);
  });

  it('reports a datagram larger than its slot so it can be counted as oversize', () => {
    const receiver = UdpSocket.open('127.0.0.1', 0, false);
    const sender = UdpSocket.open('127.0.0.1', 0, false);
    opened.push(receiver, sender);
    const to = receiver.localAddress();
    const results = new Int32Array(1);
    sender.sendBatch(Buffer.alloc(1000), new Uint32Array([0]), new Uint32Array([1000]), addressRecord(to.address, to.port), 1, results);
    const lengths = new Uint32Array(1);
    expect(receiver.recvBatch(Buffer.alloc(512), 512, 64, 1, lengths, Buffer.alloc(ADDR_RECORD_LEN))).toBe(1);
    expect(lengths[0]).toBeGreaterThan(512 - 64);
  });

  it('puts the errno of a failed datagram in its result and sends the rest', () => {
    const receiver = UdpSocket.open('127.0.0.1', 0, false);
    const sender = UdpSocket.open('127.0.0.1', 0, false);
    opened.push(receiver, sender);
    const to = receiver.localAddress();
    const records = Buffer.alloc(3 * ADDR_RECORD_LEN);
    addressRecord(to.address, to.port).copy(records, 0);
    addressRecord('127.0.0.1', 0).copy(records, ADDR_RECORD_LEN); // port 0: EINVAL
    addressRecord(to.address, to.port).copy(records, 2 * ADDR_RECORD_LEN);
    const results = new Int32Array(3);
    const sent = sender.sendBatch(Buffer.alloc(100), new Uint32Array([0, 0, 0]), new Uint32Array([50, 50, 50]), records, 3, results);
    expect(sent).toBe(2);
    expect(results[0]).toBe(0);
    expect(results[1]).not.toBe(0);
    expect(results[2]).toBe(0);
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
