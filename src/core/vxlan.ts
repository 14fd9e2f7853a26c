// RFC 7348 VXLAN header codec. Works in place on Buffers: the header is
// written into headroom in front of a frame, never copied around it.
//
//  0               1               2               3
// |R|R|R|R|I|R|R|R|           Reserved                            |
// |          VXLAN Network Identifier (VNI)       |   Reserved    |

import { VXLAN_HEADER_LEN as HEADER_LEN } from './protocol';

// A plain constant, not a re-export (see ethernet.ts).
export const VXLAN_HEADER_LEN = HEADER_LEN;
export const VXLAN_FLAG_I = 0x08;
export const VNI_MIN = 0;
export const VNI_MAX = 0xffffff;
/** IANA-assigned VXLAN port (the kernel's own default is 8472 unless told 4789). */
export const VXLAN_PORT = 4789;

/** Outcomes of parsing a header; VNIs are >= 0, so failures are negative. */
export const HEADER_TOO_SHORT = -1;
export const HEADER_NO_I_FLAG = -2;

export function isValidVni(vni: number): boolean {
  return Number.isInteger(vni) && vni >= VNI_MIN && vni <= VNI_MAX;
}

/** Writes the 8-byte header at buf[offset]: I flag set, every reserved bit zero. */
export function writeVxlanHeader(buf: Buffer, offset: number, vni: number): void {
  buf[offset] = VXLAN_FLAG_I;
  buf[offset + 1] = 0;
  buf[offset + 2] = 0;
  buf[offset + 3] = 0;
  buf[offset + 4] = (vni >>> 16) & 0xff;
  buf[offset + 5] = (vni >>> 8) & 0xff;
  buf[offset + 6] = vni & 0xff;
  buf[offset + 7] = 0;
}

/**
 * Returns the VNI of the datagram at buf[offset..offset+length), or
 * HEADER_TOO_SHORT / HEADER_NO_I_FLAG. Reserved bits are ignored on receipt
 * (RFC 7348 section 5), so only the I flag is checked.
 */
export function readVxlanVni(buf: Buffer, offset: number, length: number): number {
  if (length < VXLAN_HEADER_LEN) return HEADER_TOO_SHORT;
  if ((buf[offset] & VXLAN_FLAG_I) === 0) return HEADER_NO_I_FLAG;
  return (buf[offset + 4] << 16) | (buf[offset + 5] << 8) | buf[offset + 6];
}
