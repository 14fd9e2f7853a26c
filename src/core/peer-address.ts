// Which underlay addresses make sense as a peer: one other host, reached by
// unicast. Used for --peer, the config file (and so reload) and `peer add`,
// by the CLI before it asks the daemon and by the daemon itself.
//
// Pure: no look at this host's interfaces (the daemon refuses its own
// addresses, and broadcasts of its own subnets, separately).

import { isIP } from 'node:net';
import { addressRecord, canonicalAddress, isMappedIpv4 } from './address';

/**
 * What is wrong with address as a peer, as a phrase that follows the address
 * ("0.0.0.0 is the unspecified address ..."); undefined if it is a usable
 * unicast address of another host.
 */
export function peerAddressProblem(address: string): string | undefined {
  if (isIP(address) === 0) return 'is not an IPv4 or IPv6 address';
  const zoned = address.includes('%');
  const record = addressRecord(address, 0);
  if (isMappedIpv4(record, 0)) return ipv4Problem(record[12], record[13], record[14], record[15]);
  const first = record.readUInt16BE(0);
  if (record.every((byte) => byte === 0)) return 'is the unspecified address (give the address of the other host)';
  if (canonicalAddress(address) === '::1') return 'is a loopback address (give the address of the other host)';
  if (record[0] === 0xff) return MULTICAST;
  if ((first & 0xffc0) === 0xfe80) {
    // Sends carry no scope id, so even a zone would not reach the link.
    return zoned
      ? 'is a link-local address; link-local peers are not supported (give a global or unique-local address)'
      : 'is a link-local address without a zone, which no route reaches (give a global or unique-local address)';
  }
  if (zoned) return 'has a zone, which only link-local addresses take';
  return undefined;
}

const MULTICAST =
  'is a multicast group; tsvtep sends to every peer itself (head-end replication), so list the unicast addresses of the other hosts';

function ipv4Problem(a: number, b: number, c: number, d: number): string | undefined {
  if (a === 0 && b === 0 && c === 0 && d === 0) return 'is the unspecified address (give the address of the other host)';
  if (a === 127) return 'is a loopback address (give the address of the other host)';
  if (a >= 224 && a <= 239) return MULTICAST;
  if (a === 255 && b === 255 && c === 255 && d === 255) return 'is the broadcast address (give the address of the other host)';
  if (a === 0) return 'is in 0.0.0.0/8, which no host has (give the address of the other host)';
  if (a >= 240) return 'is in the reserved range 240.0.0.0/4 (give the address of the other host)';
  return undefined;
}

/** The subnet broadcast address of an IPv4 interface address with its prefix length, or undefined (IPv6, /31, /32). */
export function ipv4Broadcast(address: string, prefixLength: number): string | undefined {
  if (isIP(address) !== 4 || prefixLength >= 31 || prefixLength < 0) return undefined;
  const value = address.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
  const hostBits = 2 ** (32 - prefixLength);
  const broadcast = Math.floor(value / hostBits) * hostBits + hostBits - 1;
  return [24, 16, 8, 0].map((shift) => Math.floor(broadcast / 2 ** shift) % 256).join('.');
}
