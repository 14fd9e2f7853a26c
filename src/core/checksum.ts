// The Internet checksum (RFC 1071) over Buffers, without allocating.

/**
 * Adds buf[offset..offset+length) to sum as big-endian 16-bit words (an odd
 * last byte is padded with zero). The result is not folded: pass it on to
 * add more bytes, then finish it with finishChecksum.
 */
export function sumWords(buf: Buffer, offset: number, length: number, sum = 0): number {
  const end = offset + (length & ~1);
  for (let i = offset; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if ((length & 1) === 1) sum += buf[end] << 8;
  return sum;
}

/** Folds the carries of a sum into 16 bits and complements it. */
export function finishChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** The checksum of buf[offset..offset+length), e.g. of an IPv4 header whose checksum field is zero. */
export function internetChecksum(buf: Buffer, offset: number, length: number): number {
  return finishChecksum(sumWords(buf, offset, length));
}

/**
 * The sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source and
 * destination address at buf[ipv6Header + 8 ..+ 40), upper-layer length and
 * next header. Add the upper-layer message to it, then finishChecksum.
 */
export function ipv6PseudoHeaderSum(buf: Buffer, ipv6Header: number, upperLength: number, nextHeader: number): number {
  return sumWords(buf, ipv6Header + 8, 32, Math.floor(upperLength / 0x10000) + (upperLength & 0xffff) + nextHeader);
}
