// The Segmenter contract (TSO segmentation and checksum completion), for any
// implementation: every segment must be a valid packet, and the segments
// together must carry exactly the original payload. test/unit runs it on the
// TypeScript segmenter, test/integration on the native addon's.

import { describe, expect, it } from 'vitest';
import { finishChecksum, sumWords } from '../../src/core/checksum';
import type { Segmenter } from '../../src/core/offload';

export const PREFIX = Buffer.from([0x08, 0, 0, 0, 0, 0, 100, 0]);

export function tcpFrame(ipv6: boolean, payload: Buffer, flags = 0x18): Buffer {
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(ipv6 ? 0x86dd : 0x0800, 12);
  const tcp = Buffer.alloc(32); // 20 bytes + 12 bytes of options (timestamps)
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(5001, 2);
  tcp.writeUInt32BE(0xfffff000, 4); // sequence numbers wrap inside the train
  tcp[12] = 8 << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(0xbeef, 16); // a partial checksum the segmenter must replace
  let ip: Buffer;
  if (ipv6) {
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(tcp.length + payload.length, 4);
    ip[6] = 6;
    ip[7] = 64;
    ip[23] = 1;
    ip[39] = 2;
  } else {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + tcp.length + payload.length, 2);
    ip.writeUInt16BE(0xfffe, 4);
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]).copy(ip, 12);
  }
  return Buffer.concat([eth, ip, tcp, payload]);
}

function tcpChecksumOk(segment: Buffer, ipv6: boolean): boolean {
  const l3 = 14;
  const l4 = l3 + (ipv6 ? 40 : 20);
  const tcpLength = segment.length - l4;
  let sum = ipv6 ? sumWords(segment, l3 + 8, 32) : sumWords(segment, l3 + 12, 8);
  sum += 6 + tcpLength;
  sum = sumWords(segment, l4, tcpLength, sum);
  return finishChecksum(sum) === 0;
}

function split(segmenter: Segmenter, frame: Buffer, gsoSize: number, maxL3: number): Buffer[] {
  const dst = Buffer.alloc(256 * 1024);
  const out = new Uint32Array(3);
  expect(segmenter.segmentTcp(frame, 0, frame.length, gsoSize, maxL3, PREFIX, dst, 0, dst.length, out)).toBe(0);
  const [count, stride, last] = out;
  const segments: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const start = i * stride;
    const datagram = dst.subarray(start, start + (i + 1 === count ? last : stride));
    expect([...datagram.subarray(0, 8)]).toEqual([...PREFIX]);
    segments.push(datagram.subarray(8));
  }
  return segments;
}

/** The contract's tests for one implementation, named name in the report. */
export function describeSegmenterContract(name: string, segmenter: Segmenter): void {
  describe.each([
    ['IPv4', false],
    ['IPv6', true],
  ])(`${name}: TSO segmentation over %s`, (_name, ipv6) => {
    const payload = Buffer.alloc(10_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
    const l4 = 14 + (ipv6 ? 40 : 20);

    it('cuts the payload into MSS-sized, valid segments that reassemble to the original', () => {
      // The sender's MSS, unless IP + TCP headers + MSS would exceed the overlay MTU.
      const mss = Math.min(1398, 1450 - (l4 - 14) - 32);
      const segments = split(segmenter, tcpFrame(ipv6, payload), 1398, 1450);
      expect(segments).toHaveLength(Math.ceil(payload.length / mss));
      const joined = Buffer.concat(segments.map((s) => s.subarray(l4 + 32)));
      expect(joined.equals(payload)).toBe(true);
      segments.forEach((segment, i) => {
        expect(tcpChecksumOk(segment, ipv6), `segment ${i} TCP checksum`).toBe(true);
        expect(segment.readUInt32BE(l4 + 4)).toBe((0xfffff000 + i * mss) >>> 0);
        const last = i === segments.length - 1;
        expect(segment[l4 + 13] & 0x08, 'PSH only on the last').toBe(last ? 0x08 : 0);
        if (ipv6) {
          expect(segment.readUInt16BE(14 + 4)).toBe(segment.length - l4);
        } else {
          expect(segment.readUInt16BE(14 + 2)).toBe(segment.length - 14);
          expect(segment.readUInt16BE(14 + 4)).toBe((0xfffe + i) & 0xffff);
          expect(finishChecksum(sumWords(segment, 14, 20))).toBe(0);
        }
      });
    });

    it('cuts smaller than the sender asked when the overlay MTU is smaller', () => {
      const segments = split(segmenter, tcpFrame(ipv6, payload), 1460, 1400);
      for (const segment of segments) expect(segment.length - 14).toBeLessThanOrEqual(1400);
      expect(Buffer.concat(segments.map((s) => s.subarray(l4 + 32))).equals(payload)).toBe(true);
    });
  });

  describe(`${name}: segmenter edge cases`, () => {
    it('refuses what is not TCP, and a destination too small', () => {
      const frame = tcpFrame(false, Buffer.alloc(3000));
      frame[14 + 9] = 17; // UDP
      const out = new Uint32Array(3);
      const dst = Buffer.alloc(64 * 1024);
      expect(segmenter.segmentTcp(frame, 0, frame.length, 1400, 1450, PREFIX, dst, 0, dst.length, out)).toBe(-1);
      const tcp = tcpFrame(false, Buffer.alloc(3000));
      expect(segmenter.segmentTcp(tcp, 0, tcp.length, 1400, 1450, PREFIX, dst, 0, 1000, out)).toBe(-2);
      expect(segmenter.segmentTcp(Buffer.alloc(10), 0, 10, 1400, 1450, PREFIX, dst, 0, dst.length, out)).toBe(-1);
    });

    it('tells a valid TCP checksum from a wrong one, and refuses what is not TCP', () => {
      for (const ipv6 of [false, true]) {
        const [segment] = split(segmenter, tcpFrame(ipv6, Buffer.from('a segment the coalescer checks')), 1400, 1450);
        const frame = Buffer.from(segment);
        expect(segmenter.tcpChecksumValid(frame, 0, frame.length)).toBe(true);
        frame[frame.length - 1] ^= 0x01;
        expect(segmenter.tcpChecksumValid(frame, 0, frame.length)).toBe(false);
        const udp = Buffer.from(segment);
        udp[14 + (ipv6 ? 6 : 9)] = 17;
        expect(segmenter.tcpChecksumValid(udp, 0, udp.length)).toBe(false);
      }
    });

    it('completes a partial checksum in place', () => {
      const frame = tcpFrame(false, Buffer.from('some payload bytes'));
      const l4 = 34;
      // What the kernel leaves for CHECKSUM_PARTIAL: the folded pseudo-header sum, not complemented.
      const pseudo = sumWords(frame, 14 + 12, 8) + 6 + (frame.length - l4);
      frame.writeUInt16BE(~finishChecksum(pseudo) & 0xffff, l4 + 16);
      expect(segmenter.finishChecksum(frame, 0, frame.length, l4, 16)).toBe(true);
      expect(tcpChecksumOk(frame, false)).toBe(true);
      expect(segmenter.finishChecksum(frame, 0, frame.length, frame.length, 16)).toBe(false);
    });
  });
}
