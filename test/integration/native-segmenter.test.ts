// The native addon's Segmenter (native/offload.cc), which the daemon uses:
// the same contract as the TypeScript one the unit tests use, and the same
// bytes as it for the same input, frame for frame.

import { describe, expect, it } from 'vitest';
import { pureSegmenter } from '../../src/core/pure-segmenter';
import { nativeSegmenter } from '../../src/io/segmenter';
import { describeSegmenterContract, PREFIX, tcpFrame } from '../helpers/segmenter-contract';

const native = nativeSegmenter();
const pure = pureSegmenter();

describeSegmenterContract('native segmenter', native);

/** A deterministic pseudo-random sequence (xorshift32), so a failure can be replayed. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

describe('native and TypeScript segmenters agree', () => {
  it('on 300 random TCP frames: the same status, the same segments byte for byte, the same checksum verdicts', () => {
    const next = random(0x16);
    const seen = new Map<number, number>();
    for (let round = 0; round < 300; round++) {
      const ipv6 = next() < 0.5;
      const payload = Buffer.alloc(Math.floor(next() * 20_000));
      for (let i = 0; i < payload.length; i++) payload[i] = Math.floor(next() * 256);
      const frame = tcpFrame(ipv6, payload, Math.floor(next() * 256));
      if (next() < 0.1) frame[14 + (ipv6 ? 6 : 9)] = 17; // UDP: not for the segmenter
      const gsoSize = Math.floor(next() * 2000);
      const maxL3 = 40 + Math.floor(next() * 1500);
      const capacity = Math.floor(next() * 64 * 1024);
      const results = [native, pure].map((segmenter) => {
        const dst = Buffer.alloc(64 * 1024);
        const out = new Uint32Array(3);
        const status = segmenter.segmentTcp(frame, 0, frame.length, gsoSize, maxL3, PREFIX, dst, 0, capacity, out);
        return { status, out: [...out], dst };
      });
      const what = `round ${round}: ipv6 ${ipv6}, payload ${payload.length}, gsoSize ${gsoSize}, maxL3 ${maxL3}, capacity ${capacity}`;
      expect(results[1].status, what).toBe(results[0].status);
      seen.set(results[0].status, (seen.get(results[0].status) ?? 0) + 1);
      expect(results[1].out, what).toEqual(results[0].out);
      expect(results[1].dst.equals(results[0].dst), what).toBe(true);

      // A segment just made (valid checksums), or the input (a partial one), one byte damaged half of the time.
      const [count, stride, lastLength] = results[0].out;
      const firstEnd = count === 1 ? lastLength : stride;
      const damaged = Buffer.from(results[0].status === 0 ? results[0].dst.subarray(PREFIX.length, firstEnd) : frame);
      if (next() < 0.5 && damaged.length > 60) damaged[Math.floor(next() * damaged.length)] ^= 0xff;
      expect(pure.tcpChecksumValid(damaged, 0, damaged.length), what).toBe(native.tcpChecksumValid(damaged, 0, damaged.length));
      const csumStart = Math.floor(next() * frame.length);
      const [a, b] = [Buffer.from(frame), Buffer.from(frame)];
      expect(pure.finishChecksum(b, 0, b.length, csumStart, 16), what).toBe(native.finishChecksum(a, 0, a.length, csumStart, 16));
      expect(b.equals(a), what).toBe(true);
    }
    // Every outcome came up often: segmented, refused (headers do not fit), no room.
    for (const status of [0, -1, -2]) expect(seen.get(status) ?? 0, `status ${status}`).toBeGreaterThan(20);
  });
});
