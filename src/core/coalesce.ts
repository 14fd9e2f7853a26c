// Receive-side coalescing (GRO in userspace). Consecutive TCP segments of one
// flow that arrive in a batch are merged into one large frame and written to
// the TAP once, with a virtio_net_hdr that tells the kernel it is a TSO frame
// (it re-segments only if a port on the way needs it). One write per 64 KiB
// instead of one per 1.4 KiB is what makes the receiving side keep up.
//
// Only plain data segments merge: ACK set, PSH allowed on the last, no other
// flag, no IPv4 options or fragments, no IPv6 extension headers, identical
// Ethernet/IP/TCP headers but for lengths, IDs, sequence and checksums, and a
// valid TCP checksum on every segment (the merged frame's checksum is left for
// the kernel, so a bad segment must not hide in it).

import { finishChecksum, sumWords } from './checksum';
import { GSO_TCPV4, GSO_TCPV6, VNET_F_NEEDS_CSUM, VNET_HDR_LEN } from './offload';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN } from './protocol';

const PROTO_TCP = 6;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
const L3 = ETH_HEADER_LEN;
/** Largest merged IP packet; leaves room under the 16-bit length fields. */
const MAX_MERGED_L3 = 65_000;

/** Parsed shape of one candidate segment, reused (no allocation per frame). */
class Segment {
  ipv4 = false;
  /** Offset of the TCP header from the frame start. */
  l4 = 0;
  /** Ethernet + IP + TCP header bytes. */
  headers = 0;
  payload = 0;
  flags = 0;
  seq = 0;
}

/** Writes are described as (offset, length) in the slab; these are rewritten in place. */
export interface WriteList {
  offsets: Uint32Array;
  lengths: Uint32Array;
  /** Frames each entry carries (1, or the number of segments merged). */
  frames: Uint32Array;
  /** Inner bytes each entry carries, as received. */
  innerBytes: Uint32Array;
  /** 1 if the entry is a bare frame that needs an empty virtio_net_hdr, 0 if it starts with its own. */
  prependHeader: Uint8Array;
}

export class TcpCoalescer {
  private readonly head = new Segment();
  private readonly next = new Segment();

  /** checksumValid: whether a frame's TCP checksum is right (native, it reads every byte). */
  constructor(private readonly checksumValid: (buf: Buffer, frame: number, length: number) => boolean) {}

  /**
   * Rewrites count entries (bare frames in buf): runs of mergeable segments
   * are copied into buf[scratch..scratchEnd) as one frame behind a TSO
   * virtio_net_hdr (prependHeader 0); other frames stay where they are and
   * are marked for an empty header (prependHeader 1). Returns the new count.
   */
  coalesce(buf: Buffer, list: WriteList, count: number, scratch: number, scratchEnd: number): number {
    const { offsets, lengths, frames, innerBytes, prependHeader } = list;
    let out = 0;
    let cursor = scratch;
    for (let i = 0; i < count; ) {
      const frame = offsets[i];
      const length = lengths[i];
      let runEnd = i + 1;
      if (this.parse(buf, frame, length, this.head) && (this.head.flags & TCP_PSH) === 0) {
        let merged = this.head.payload;
        while (runEnd < count && this.continues(buf, frame, offsets[runEnd], lengths[runEnd], merged)) {
          merged += this.next.payload;
          runEnd++;
          if (this.next.payload < this.head.payload || (this.next.flags & TCP_PSH) !== 0) break;
        }
        const size = VNET_HDR_LEN + this.head.headers + merged;
        if (runEnd - i > 1 && cursor + size <= scratchEnd) {
          let carried = 0;
          for (let k = i; k < runEnd; k++) carried += lengths[k];
          this.merge(buf, offsets, lengths, i, runEnd, merged, cursor);
          offsets[out] = cursor;
          lengths[out] = size;
          frames[out] = runEnd - i;
          innerBytes[out] = carried;
          prependHeader[out] = 0;
          out++;
          cursor += size;
          i = runEnd;
          continue;
        }
        runEnd = i + 1;
      }
      // A frame on its own: written where it is, behind an empty header the port adds.
      offsets[out] = frame;
      lengths[out] = length;
      frames[out] = 1;
      innerBytes[out] = length;
      prependHeader[out] = 1;
      out++;
      i = runEnd;
    }
    return out;
  }

  /** Parses a plain TCP data segment with a valid checksum into seg; false for anything else. */
  private parse(buf: Buffer, frame: number, length: number, seg: Segment): boolean {
    if (length < L3 + 40) return false;
    const type = (buf[frame + 12] << 8) | buf[frame + 13];
    const ip = frame + L3;
    let l4: number;
    let end: number;
    if (type === ETHERTYPE_IPV4) {
      if (buf[ip] !== 0x45 || buf[ip + 9] !== PROTO_TCP) return false;
      if ((((buf[ip + 6] << 8) | buf[ip + 7]) & 0x3fff) !== 0) return false; // a fragment
      end = ip + ((buf[ip + 2] << 8) | buf[ip + 3]);
      l4 = ip + 20;
      seg.ipv4 = true;
    } else if (type === ETHERTYPE_IPV6) {
      if (buf[ip] >> 4 !== 6 || buf[ip + 6] !== PROTO_TCP) return false;
      end = ip + 40 + ((buf[ip + 4] << 8) | buf[ip + 5]);
      l4 = ip + 40;
      seg.ipv4 = false;
    } else {
      return false;
    }
    if (end > frame + length || end < l4 + 20) return false;
    const headers = l4 + ((buf[l4 + 12] >> 4) << 2);
    const flags = buf[l4 + 13];
    if (headers - l4 < 20 || headers >= end || (flags & ~(TCP_ACK | TCP_PSH)) !== 0 || (flags & TCP_ACK) === 0) return false;
    if (end !== frame + length) return false; // padded or trailing bytes: leave it alone
    if (!this.checksumValid(buf, frame, length)) return false;
    seg.l4 = l4 - frame;
    seg.headers = headers - frame;
    seg.payload = end - headers;
    seg.flags = flags;
    seg.seq = buf.readUInt32BE(l4 + 4);
    return true;
  }

  /** Whether the segment at frame continues the run that started at head (merged bytes so far). */
  private continues(buf: Buffer, head: number, frame: number, length: number, merged: number): boolean {
    const h = this.head;
    const n = this.next;
    if (!this.parse(buf, frame, length, n)) return false;
    if (n.ipv4 !== h.ipv4 || n.headers !== h.headers || n.payload > h.payload) return false;
    if (h.headers - L3 + merged + n.payload > MAX_MERGED_L3) return false;
    if (n.seq !== ((h.seq + merged) >>> 0)) return false;
    // Ethernet header and the IP fields that identify the flow must match.
    if (!sameBytes(buf, head, frame, 0, L3)) return false;
    if (h.ipv4) {
      if (!sameBytes(buf, head, frame, L3, L3 + 2) || !sameBytes(buf, head, frame, L3 + 6, L3 + 10)) return false;
      if (!sameBytes(buf, head, frame, L3 + 12, L3 + 20)) return false;
    } else if (!sameBytes(buf, head, frame, L3, L3 + 4) || !sameBytes(buf, head, frame, L3 + 6, L3 + 40)) {
      return false;
    }
    // TCP: ports, ack, data offset, window, urgent pointer and options; flags apart from PSH.
    const l4 = h.l4;
    if (!sameBytes(buf, head, frame, l4, l4 + 4) || !sameBytes(buf, head, frame, l4 + 8, l4 + 13)) return false;
    if (!sameBytes(buf, head, frame, l4 + 14, l4 + 16) || !sameBytes(buf, head, frame, l4 + 18, h.headers)) return false;
    return ((buf[head + l4 + 13] ^ buf[frame + l4 + 13]) & ~TCP_PSH) === 0;
  }

  /** Copies the run [first, end) into one frame at out behind a TSO virtio_net_hdr. */
  private merge(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, first: number, end: number, payload: number, out: number): void {
    const h = this.head;
    const frame = out + VNET_HDR_LEN;
    buf.copyWithin(frame, offsets[first], offsets[first] + lengths[first]);
    let cursor = frame + lengths[first];
    let lastFlags = h.flags;
    for (let k = first + 1; k < end; k++) {
      buf.copyWithin(cursor, offsets[k] + h.headers, offsets[k] + lengths[k]);
      cursor += lengths[k] - h.headers;
      lastFlags = buf[offsets[k] + h.l4 + 13];
    }
    const ip = frame + L3;
    const tcp = frame + h.l4;
    const tcpLength = h.headers - h.l4 + payload;
    let pseudo: number;
    if (h.ipv4) {
      buf.writeUInt16BE(h.headers - L3 + payload, ip + 2);
      buf.writeUInt16BE(0, ip + 10);
      buf.writeUInt16BE(finishChecksum(sumWords(buf, ip, 20)), ip + 10);
      pseudo = sumWords(buf, ip + 12, 8, PROTO_TCP + tcpLength);
    } else {
      buf.writeUInt16BE(tcpLength, ip + 4);
      pseudo = sumWords(buf, ip + 8, 32, PROTO_TCP + tcpLength);
    }
    buf[tcp + 13] = h.flags | (lastFlags & TCP_PSH);
    // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum; the kernel finishes it.
    buf.writeUInt16BE(~finishChecksum(pseudo) & 0xffff, tcp + 16);

    buf[out] = VNET_F_NEEDS_CSUM;
    buf[out + 1] = h.ipv4 ? GSO_TCPV4 : GSO_TCPV6;
    buf.writeUInt16LE(h.headers, out + 2);
    buf.writeUInt16LE(h.payload, out + 4);
    buf.writeUInt16LE(h.l4, out + 6);
    buf.writeUInt16LE(16, out + 8);
  }
}

function sameBytes(buf: Buffer, a: number, b: number, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}
