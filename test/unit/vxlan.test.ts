import { describe, expect, it } from 'vitest';
import {
  HEADER_NO_I_FLAG,
  HEADER_TOO_SHORT,
  VNI_MAX,
  VXLAN_HEADER_LEN,
  isValidVni,
  readVxlanVni,
  writeVxlanHeader,
} from '../../src/core/vxlan';

describe('VXLAN header codec (RFC 7348)', () => {
  it('writes the I flag, the VNI and zero reserved bits', () => {
    const buf = Buffer.alloc(16, 0xff);
    writeVxlanHeader(buf, 4, 0x123456);
    expect([...buf.subarray(4, 12)]).toEqual([0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
    // Bytes around the header are untouched: it goes into headroom, nothing is shifted.
    expect(buf[3]).toBe(0xff);
    expect(buf[12]).toBe(0xff);
  });

  it('round-trips the smallest and largest VNI', () => {
    for (const vni of [0, 1, 100, 4096, VNI_MAX]) {
      const buf = Buffer.alloc(VXLAN_HEADER_LEN);
      writeVxlanHeader(buf, 0, vni);
      expect(readVxlanVni(buf, 0, VXLAN_HEADER_LEN)).toBe(vni);
    }
  });

  it('ignores reserved bits on receipt', () => {
    const buf = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x64, 0xff]);
    expect(readVxlanVni(buf, 0, 8)).toBe(100);
  });

  it('rejects a header without the I flag', () => {
    const buf = Buffer.from([0xf7, 0, 0, 0, 0, 0, 100, 0]);
    expect(readVxlanVni(buf, 0, 8)).toBe(HEADER_NO_I_FLAG);
  });

  it('rejects a datagram shorter than the header', () => {
    const buf = Buffer.from([0x08, 0, 0, 0, 0, 0, 100, 0]);
    expect(readVxlanVni(buf, 0, 7)).toBe(HEADER_TOO_SHORT);
    expect(readVxlanVni(buf, 0, 0)).toBe(HEADER_TOO_SHORT);
  });

  it('knows the valid VNI range', () => {
    expect(isValidVni(0)).toBe(true);
    expect(isValidVni(VNI_MAX)).toBe(true);
    expect(isValidVni(VNI_MAX + 1)).toBe(false);
    expect(isValidVni(-1)).toBe(false);
    expect(isValidVni(1.5)).toBe(false);
  });
});
