// Underlay addresses cross the native boundary as 20-byte records: 16 bytes of
// IPv6 address (IPv4 as ::ffff:a.b.c.d), the UDP port in network order, and
// two spare bytes. One shape for both families keeps the data path simple.

import { isIP } from 'node:net';

export const ADDR_RECORD_LEN = 20;
const PORT_OFFSET = 16;

/** Writes address:port as a record at out[offset]. Throws on a bad address. */
export function writeAddressRecord(address: string, port: number, out: Buffer, offset: number): void {
  out.fill(0, offset, offset + ADDR_RECORD_LEN);
  const family = isIP(address);
  if (family === 4) {
    out[offset + 10] = 0xff;
    out[offset + 11] = 0xff;
    writeIpv4(address, out, offset + 12);
  } else if (family === 6) {
    writeIpv6(address, out, offset);
  } else {
    throw new Error(`not an IP address: ${address}`);
  }
  out.writeUInt16BE(port, offset + PORT_OFFSET);
}

export function addressRecord(address: string, port: number): Buffer {
  const record = Buffer.alloc(ADDR_RECORD_LEN);
  writeAddressRecord(address, port, record, 0);
  return record;
}

export function isMappedIpv4(record: Buffer, offset: number): boolean {
  for (let i = 0; i < 10; i++) if (record[offset + i] !== 0) return false;
  return record[offset + 10] === 0xff && record[offset + 11] === 0xff;
}

export function recordPort(record: Buffer, offset: number): number {
  return record.readUInt16BE(offset + PORT_OFFSET);
}

/** The address of a record as text: dotted quad for IPv4, RFC 5952 form for IPv6. */
export function recordAddress(record: Buffer, offset: number): string {
  if (isMappedIpv4(record, offset)) {
    return `${record[offset + 12]}.${record[offset + 13]}.${record[offset + 14]}.${record[offset + 15]}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(record.readUInt16BE(offset + i * 2));
  // Compress the longest run of two or more zero groups into '::'.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLength).join(':');
  return `${head}::${tail}`;
}

/** Canonical text of an address, so '10.0.0.1' and '::ffff:10.0.0.1' compare equal. */
export function canonicalAddress(address: string): string {
  return recordAddress(addressRecord(address, 0), 0);
}

export function addressFamily(address: string): 4 | 6 {
  const record = addressRecord(address, 0);
  return isMappedIpv4(record, 0) ? 4 : 6;
}

function writeIpv4(address: string, out: Buffer, offset: number): void {
  const parts = address.split('.');
  for (let i = 0; i < 4; i++) out[offset + i] = Number(parts[i]);
}

function writeIpv6(address: string, out: Buffer, offset: number): void {
  let text = address;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = Buffer.alloc(4);
    writeIpv4(tail, v4, 0);
    text = `${text.slice(0, lastColon + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [left, right] = text.includes('::') ? text.split('::') : [text, undefined];
  const head = left ? left.split(':') : [];
  const rest = right !== undefined && right !== '' ? right.split(':') : [];
  const groups = right === undefined ? head : [...head, ...Array(8 - head.length - rest.length).fill('0'), ...rest];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(parseInt(groups[i], 16), offset + i * 2);
}
