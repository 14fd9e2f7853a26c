// Flow entropy for the outer UDP source port (RFC 7348 section 5): datagrams
// of one inner flow leave from one source port, different flows spread over
// several, so that ECMP routers in the underlay balance them like the flows
// themselves. The hash covers what identifies an inner flow: IP addresses,
// protocol and, for TCP/UDP/SCTP outside fragments, the ports; for anything
// else the MAC addresses.

import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN } from './protocol';

function mix(h: number, word: number): number {
  h = Math.imul(h ^ word, 0x01000193);
  return h ^ (h >>> 15);
}

function hasPorts(protocol: number): boolean {
  return protocol === 6 || protocol === 17 || protocol === 132;
}

/** A 31-bit hash of the inner flow of the Ethernet frame at buf[frame..frame+length). */
export function flowHash(buf: Buffer, frame: number, length: number): number {
  let h = 0x811c9dc5;
  let l3 = frame + 14;
  let type = length >= 14 ? (buf[frame + 12] << 8) | buf[frame + 13] : 0;
  if (type === ETHERTYPE_VLAN && length >= 18) {
    h = mix(h, (buf[frame + 14] << 8) | buf[frame + 15]);
    type = (buf[frame + 16] << 8) | buf[frame + 17];
    l3 += 4;
  }
  const end = frame + length;
  if (type === ETHERTYPE_IPV4 && l3 + 20 <= end) {
    for (let i = 12; i < 20; i += 4) h = mix(h, buf.readUInt32BE(l3 + i) | 0);
    const protocol = buf[l3 + 9];
    h = mix(h, protocol);
    const fragment = ((buf[l3 + 6] << 8) | buf[l3 + 7]) & 0x3fff;
    const l4 = l3 + (buf[l3] & 0x0f) * 4;
    if (fragment === 0 && hasPorts(protocol) && l4 + 4 <= end) h = mix(h, buf.readUInt32BE(l4) | 0);
  } else if (type === ETHERTYPE_IPV6 && l3 + 40 <= end) {
    for (let i = 8; i < 40; i += 4) h = mix(h, buf.readUInt32BE(l3 + i) | 0);
    const protocol = buf[l3 + 6];
    h = mix(h, protocol);
    if (hasPorts(protocol) && l3 + 44 <= end) h = mix(h, buf.readUInt32BE(l3 + 40) | 0);
  } else {
    for (let i = 0; i < 12 && i + 2 <= length; i += 2) h = mix(h, (buf[frame + i] << 8) | buf[frame + i + 1]);
  }
  // Final avalanche (MurmurHash3's fmix32), so that the low bits depend on every input bit.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & 0x7fffffff;
}
