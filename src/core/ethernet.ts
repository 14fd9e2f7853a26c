// Ethernet helpers. A MAC address is handled as two numbers, the high 16 bits
// and the low 32 bits, so the hot path never builds a string or an object.

import { ETH_HEADER_LEN as HEADER_LEN } from './protocol';

// A plain constant, not `export { } from`: a re-export compiles to a getter, which turns this
// module's exports into a slow object and keeps its functions from being inlined.
export const ETH_HEADER_LEN = HEADER_LEN;
export const ETH_DST_OFFSET = 0;
export const ETH_SRC_OFFSET = 6;

/** Group bit: broadcast and multicast destinations have it set. */
export function isGroupMac(buf: Buffer, macOffset: number): boolean {
  return (buf[macOffset] & 0x01) !== 0;
}

export function macHigh(buf: Buffer, macOffset: number): number {
  return (buf[macOffset] << 8) | buf[macOffset + 1];
}

export function macLow(buf: Buffer, macOffset: number): number {
  return (
    ((buf[macOffset + 2] << 24) | (buf[macOffset + 3] << 16) | (buf[macOffset + 4] << 8) | buf[macOffset + 5]) >>>
    0
  );
}

/** A usable source address: not a group address and not all zeros. */
export function isValidSourceMac(buf: Buffer, macOffset: number): boolean {
  if (isGroupMac(buf, macOffset)) return false;
  return macHigh(buf, macOffset) !== 0 || macLow(buf, macOffset) !== 0;
}

const MAC_PATTERN = /^([0-9a-f]{2})(?::([0-9a-f]{2})){5}$/i;

/** Parses 'aa:bb:cc:dd:ee:ff'; returns null if it is not a MAC address. */
export function parseMac(text: string): { high: number; low: number } | null {
  if (!MAC_PATTERN.test(text)) return null;
  const bytes = text.split(':').map((part) => parseInt(part, 16));
  return {
    high: (bytes[0] << 8) | bytes[1],
    low: ((bytes[2] << 24) | (bytes[3] << 16) | (bytes[4] << 8) | bytes[5]) >>> 0,
  };
}

export function formatMac(high: number, low: number): string {
  const bytes = [high >>> 8, high & 0xff, low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
