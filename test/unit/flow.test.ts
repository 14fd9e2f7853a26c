import { describe, expect, it } from 'vitest';
import { flowHash } from '../../src/core/flow';

function ipv4(src: number, dst: number, protocol: number, srcPort: number, dstPort: number, fragment = 0): Buffer {
  const frame = Buffer.alloc(14 + 20 + 8 + 10);
  frame.writeUInt16BE(0x0800, 12);
  frame[14] = 0x45;
  frame.writeUInt16BE(fragment, 14 + 6);
  frame[14 + 9] = protocol;
  frame.writeUInt32BE(src, 14 + 12);
  frame.writeUInt32BE(dst, 14 + 16);
  frame.writeUInt16BE(srcPort, 34);
  frame.writeUInt16BE(dstPort, 36);
  return frame;
}

const hash = (f: Buffer) => flowHash(f, 0, f.length);

describe('flow hash for the outer source port', () => {
  it('is the same for every packet of a flow, whatever the payload', () => {
    const a = ipv4(0xac12000b, 0xac12000c, 6, 40000, 5001);
    const b = ipv4(0xac12000b, 0xac12000c, 6, 40000, 5001);
    b.fill(0x55, 42);
    expect(hash(a)).toBe(hash(b));
  });

  it('differs between flows that differ only in a port', () => {
    const hashes = new Set<number>();
    for (let port = 40000; port < 40064; port++) hashes.add(hash(ipv4(0xac12000b, 0xac12000c, 6, port, 5001)) % 8);
    expect(hashes.size).toBe(8); // 64 flows reach every one of 8 buckets
  });

  it('ignores ports of non-first fragments and of protocols without ports', () => {
    expect(hash(ipv4(1, 2, 17, 1000, 53, 0x0010))).toBe(hash(ipv4(1, 2, 17, 2000, 53, 0x0010)));
    expect(hash(ipv4(1, 2, 1, 1000, 53))).toBe(hash(ipv4(1, 2, 1, 2000, 53)));
  });

  it('hashes MAC addresses when the frame is not IP, and survives runts', () => {
    const arp = Buffer.alloc(60);
    arp.writeUInt16BE(0x0806, 12);
    arp[5] = 1;
    const other = Buffer.from(arp);
    other[5] = 2;
    expect(hash(arp)).not.toBe(hash(other));
    expect(() => flowHash(Buffer.alloc(5), 0, 5)).not.toThrow();
  });

  it('reads only the frame it is given: bytes past its length change nothing', () => {
    // A runt, an IPv4 header cut short, and an IPv4 packet without its ports,
    // each inside a larger buffer whose tail is then overwritten.
    for (const length of [0, 5, 13, 14, 20, 33, 34, 37]) {
      const buf = Buffer.concat([Buffer.alloc(3, 0xee), ipv4(0xac12000b, 0xac12000c, 6, 40000, 5001)]);
      const before = flowHash(buf, 3, length);
      buf.fill(0x5a, 3 + length);
      expect(flowHash(buf, 3, length), `length ${length}`).toBe(before);
    }
  });
});
