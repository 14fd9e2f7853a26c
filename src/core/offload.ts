// TAP offloads: with IFF_VNET_HDR every frame on the TAP carries a 10-byte
// virtio_net_hdr in front, and with TSO the kernel hands over TCP segments of
// up to 64 KiB with a partial checksum. The engine splits those into frames
// that fit the overlay (segmentTcp) and sends each train of equal datagrams
// in one system call (UDP GSO).
//
// struct virtio_net_hdr (little endian):
//   u8 flags, u8 gso_type, u16 hdr_len, u16 gso_size, u16 csum_start, u16 csum_offset

export const VNET_HDR_LEN = 10;
export const VNET_F_NEEDS_CSUM = 0x01;
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_TCPV6 = 4;
export const GSO_ECN = 0x80;

/** Datagrams the kernel accepts in one UDP GSO send (UDP_MAX_SEGMENTS on older kernels). */
export const MAX_GSO_SEGMENTS = 64;
/** Bytes in one UDP GSO send: a UDP datagram's limit, less IPv6 and UDP headers. */
export const MAX_GSO_BYTES = 65_535 - 40 - 8;

/** Byte work on frames that the engine delegates (the native addon implements it). */
export interface Segmenter {
  /** Completes a partial checksum in place; false if the offsets are outside the frame. */
  finishChecksum(buf: Buffer, frame: number, length: number, csumStart: number, csumOffset: number): boolean;
  /** Whether a TCP frame's checksum is right (before it is hidden in a coalesced frame). */
  tcpChecksumValid(buf: Buffer, frame: number, length: number): boolean;
  /**
   * Splits a TCP frame into frames whose IP packets fit maxL3 and payload fits gsoSize, each
   * behind a copy of prefix, back to back in dst. out = [count, stride, lastLength].
   * Returns 0, -1 if not a TCP frame, -2 if dst is too small.
   */
  segmentTcp(
    src: Buffer,
    frame: number,
    length: number,
    gsoSize: number,
    maxL3: number,
    prefix: Buffer,
    dst: Buffer,
    dstOffset: number,
    dstCapacity: number,
    out: Uint32Array,
  ): number;
}

export function vnetGsoType(buf: Buffer, header: number): number {
  return buf[header + 1] & ~GSO_ECN;
}

export function vnetGsoSize(buf: Buffer, header: number): number {
  return buf[header + 4] | (buf[header + 5] << 8);
}

export function vnetCsumStart(buf: Buffer, header: number): number {
  return buf[header + 6] | (buf[header + 7] << 8);
}

export function vnetCsumOffset(buf: Buffer, header: number): number {
  return buf[header + 8] | (buf[header + 9] << 8);
}

/** A header that asks nothing of the kernel: a plain, complete frame follows. */
export function writeEmptyVnetHeader(buf: Buffer, header: number): void {
  buf.fill(0, header, header + VNET_HDR_LEN);
}
