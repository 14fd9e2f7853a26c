// Receive-side coalescing: consecutive segments of one flow become one TSO
// frame with the right virtio_net_hdr; anything else is left as it was.

import { describe, expect, it } from 'vitest';
import { finishChecksum, sumWords } from '../../src/core/checksum';
import { TcpCoalescer, type WriteList } from '../../src/core/coalesce';
import { GSO_TCPV4, VNET_HDR_LEN } from '../../src/core/offload';
import { pureSegmenter } from '../../src/core/pure-segmenter';

const coalescer = new TcpCoalescer(pureSegmenter().tcpChecksumValid);
const SLOT = 2048;
const HEAD = 64;

/** An IPv4 TCP segment with a correct checksum. */
function segment(seq: number, payload: Buffer, options: { flags?: number; srcPort?: number } = {}): Buffer {
  const frame = Buffer.alloc(14 + 20 + 20 + payload.length);
  frame.writeUInt16BE(0x0800, 12);
  const ip = 14;
  frame[ip] = 0x45;
  frame.writeUInt16BE(40 + payload.length, ip + 2);
  frame[ip + 6] = 0x40;
  frame[ip + 8] = 64;
  frame[ip + 9] = 6;
  Buffer.from([172, 18, 0, 11, 172, 18, 0, 12]).copy(frame, ip + 12);
  frame.writeUInt16BE(finishChecksum(sumWords(frame, ip, 20)), ip + 10);
  const tcp = 34;
  frame.writeUInt16BE(options.srcPort ?? 40000, tcp);
  frame.writeUInt16BE(5001, tcp + 2);
  frame.writeUInt32BE(seq >>> 0, tcp + 4);
  frame.writeUInt32BE(777, tcp + 8);
  frame[tcp + 12] = 5 << 4;
  frame[tcp + 13] = options.flags ?? 0x10;
  frame.writeUInt16BE(500, tcp + 14);
  payload.copy(frame, tcp + 20);
  const sum = sumWords(frame, ip + 12, 8, 6 + 20 + payload.length);
  frame.writeUInt16BE(finishChecksum(sumWords(frame, tcp, 20 + payload.length, sum)), tcp + 16);
  return frame;
}

function run(frames: Buffer[]): { buf: Buffer; list: WriteList; count: number } {
  const buf = Buffer.alloc(frames.length * SLOT * 2);
  const n = frames.length;
  const list: WriteList = {
    offsets: new Uint32Array(n),
    lengths: new Uint32Array(n),
    frames: new Uint32Array(n),
    innerBytes: new Uint32Array(n),
    prependHeader: new Uint8Array(n),
  };
  frames.forEach((f, i) => {
    f.copy(buf, i * SLOT + HEAD);
    list.offsets[i] = i * SLOT + HEAD;
    list.lengths[i] = f.length;
  });
  const count = coalescer.coalesce(buf, list, n, n * SLOT, buf.length);
  return { buf, list, count };
}

const chunk = (i: number) => Buffer.alloc(1000, i + 1);

describe('TCP coalescing', () => {
  it('merges consecutive segments into one TSO frame with a partial checksum', () => {
    const frames = [0, 1, 2, 3].map((i) => segment(1000 + i * 1000, chunk(i), { flags: i === 3 ? 0x18 : 0x10 }));
    const { buf, list, count } = run(frames);
    expect(count).toBe(1);
    expect(list.frames[0]).toBe(4);
    expect(list.innerBytes[0]).toBe(frames.reduce((a, f) => a + f.length, 0));
    expect(list.prependHeader[0]).toBe(0);
    const at = list.offsets[0];
    expect(buf[at]).toBe(1); // NEEDS_CSUM
    expect(buf[at + 1]).toBe(GSO_TCPV4);
    expect(buf.readUInt16LE(at + 2)).toBe(54); // header length
    expect(buf.readUInt16LE(at + 4)).toBe(1000); // gso_size: the segments' payload
    expect(buf.readUInt16LE(at + 6)).toBe(34); // csum_start
    expect(buf.readUInt16LE(at + 8)).toBe(16); // csum_offset
    const frame = buf.subarray(at + VNET_HDR_LEN, at + list.lengths[0]);
    expect(frame.readUInt16BE(16)).toBe(40 + 4000); // IPv4 total length
    expect(finishChecksum(sumWords(frame, 14, 20))).toBe(0); // IPv4 header checksum
    expect(frame[34 + 13]).toBe(0x18); // PSH of the last segment kept
    expect(frame.subarray(54).equals(Buffer.concat([0, 1, 2, 3].map(chunk)))).toBe(true);
  });

  it('leaves frames of other flows, gaps and control segments where they are, each marked for an empty header', () => {
    const frames = [
      segment(1000, chunk(0)),
      segment(2000, chunk(1), { srcPort: 40001 }), // another flow
      segment(5000, chunk(2)), // a gap in the sequence
      segment(6000, chunk(3), { flags: 0x11 }), // FIN
    ];
    const { buf, list, count } = run(frames);
    expect(count).toBe(4);
    for (let i = 0; i < 4; i++) {
      expect(list.frames[i]).toBe(1);
      expect(list.prependHeader[i]).toBe(1);
      expect(list.offsets[i]).toBe(i * SLOT + HEAD);
      expect(buf.subarray(list.offsets[i], list.offsets[i] + list.lengths[i]).equals(frames[i])).toBe(true);
    }
  });

  it('does not merge a segment whose checksum is wrong', () => {
    const frames = [0, 1, 2].map((i) => segment(i * 1000, chunk(i)));
    frames[1][60] ^= 0xff; // corrupt payload
    const { count } = run(frames);
    expect(count).toBe(3);
  });
});
