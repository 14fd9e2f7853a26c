// The Segmenter in TypeScript: the same contract as the native addon's
// (native/offload.cc), byte for byte, for tests and hosts without the addon.
// Several times slower (it sums every payload byte in JavaScript), so the
// daemon uses the native one; the system tests check both agree.

import { finishChecksum as foldAndComplement, sumWords } from './checksum';
import type { Segmenter } from './offload';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN } from './protocol';

const PROTO_TCP = 6;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/** Where the headers of a TCP frame are (reused: no allocation per frame). */
class TcpLayout {
  l3 = 0;
  l4 = 0;
  headers = 0;
  ipv4 = false;

  /** Parses buf[frame..frame+length) as Ethernet (one VLAN tag allowed) + IPv4/IPv6 + TCP; false otherwise. */
  parse(buf: Buffer, frame: number, length: number): boolean {
    if (length < 14) return false;
    let l3 = 14;
    let type = buf.readUInt16BE(frame + 12);
    if (type === ETHERTYPE_VLAN) {
      if (length < 18) return false;
      type = buf.readUInt16BE(frame + 16);
      l3 = 18;
    }
    let l4: number;
    const version = buf[frame + l3] >> 4;
    if (type === ETHERTYPE_IPV4) {
      if (length < l3 + 20) return false;
      const ihl = (buf[frame + l3] & 0x0f) * 4;
      if (version !== 4 || ihl < 20 || buf[frame + l3 + 9] !== PROTO_TCP) return false;
      l4 = l3 + ihl;
      this.ipv4 = true;
    } else if (type === ETHERTYPE_IPV6) {
      if (length < l3 + 40 || version !== 6 || buf[frame + l3 + 6] !== PROTO_TCP) return false;
      l4 = l3 + 40;
      this.ipv4 = false;
    } else {
      return false;
    }
    if (length < l4 + 20) return false;
    const tcp = (buf[frame + l4 + 12] >> 4) * 4;
    if (tcp < 20 || length < l4 + tcp) return false;
    this.l3 = l3;
    this.l4 = l4;
    this.headers = l4 + tcp;
    return true;
  }

  /** Sum of the TCP pseudo-header without the length (added per segment). */
  pseudoHeaderSum(buf: Buffer, frame: number): number {
    const ip = frame + this.l3;
    return this.ipv4 ? sumWords(buf, ip + 12, 8, PROTO_TCP) : sumWords(buf, ip + 8, 32, PROTO_TCP);
  }
}

export function pureSegmenter(): Segmenter {
  const layout = new TcpLayout();

  function finishChecksum(buf: Buffer, frame: number, length: number, csumStart: number, csumOffset: number): boolean {
    if (csumStart + csumOffset + 2 > length) return false;
    // The field holds the folded pseudo-header sum; summing over it completes the checksum.
    const result = foldAndComplement(sumWords(buf, frame + csumStart, length - csumStart));
    // For UDP a zero checksum means "none"; send the equivalent 0xffff.
    buf.writeUInt16BE(result === 0 ? 0xffff : result, frame + csumStart + csumOffset);
    return true;
  }

  function tcpChecksumValid(buf: Buffer, frame: number, length: number): boolean {
    if (!layout.parse(buf, frame, length)) return false;
    let tcpLength: number;
    if (layout.ipv4) {
      // The IP total length, not the frame, says where the segment ends (Ethernet may pad).
      const total = buf.readUInt16BE(frame + layout.l3 + 2);
      if (layout.l3 + total > length || total < layout.l4 - layout.l3) return false;
      tcpLength = total - (layout.l4 - layout.l3);
    } else {
      tcpLength = buf.readUInt16BE(frame + layout.l3 + 4);
      if (layout.l3 + 40 + tcpLength > length) return false;
    }
    return foldAndComplement(sumWords(buf, frame + layout.l4, tcpLength, layout.pseudoHeaderSum(buf, frame) + tcpLength)) === 0;
  }

  function segmentTcp(
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
  ): number {
    if (frame + length > src.length || dstOffset + dstCapacity > dst.length || out.length < 3) {
      throw new TypeError('segmentTcp: region outside its buffer');
    }
    if (gsoSize === 0 || !layout.parse(src, frame, length)) return -1;
    const { l3, l4, headers, ipv4 } = layout;
    const ipAndTcp = headers - l3;
    if (maxL3 <= ipAndTcp) return -1;
    const mss = Math.min(gsoSize, maxL3 - ipAndTcp);
    const payload = length - headers;
    if (payload === 0) return -1;
    const count = Math.ceil(payload / mss);
    const stride = prefix.length + headers + mss;
    const lastPayload = payload - (count - 1) * mss;
    if ((count - 1) * stride + prefix.length + headers + lastPayload > dstCapacity) return -2;

    const ipId = ipv4 ? src.readUInt16BE(frame + l3 + 4) : 0;
    const seq = src.readUInt32BE(frame + l4 + 4);
    const flags = src[frame + l4 + 13];
    const pseudo = layout.pseudoHeaderSum(src, frame);
    const tcpHeader = headers - l4;
    for (let i = 0; i < count; i++) {
      const chunk = i + 1 === count ? lastPayload : mss;
      const start = dstOffset + i * stride;
      prefix.copy(dst, start);
      const seg = start + prefix.length;
      src.copy(dst, seg, frame, frame + headers);
      src.copy(dst, seg + headers, frame + headers + i * mss, frame + headers + i * mss + chunk);
      const ip = seg + l3;
      const tcp = seg + l4;
      if (ipv4) {
        dst.writeUInt16BE(ipAndTcp + chunk, ip + 2);
        dst.writeUInt16BE((ipId + i) & 0xffff, ip + 4);
        dst.writeUInt16BE(0, ip + 10);
        dst.writeUInt16BE(foldAndComplement(sumWords(dst, ip, l4 - l3)), ip + 10);
      } else {
        dst.writeUInt16BE(tcpHeader + chunk, ip + 4);
      }
      dst.writeUInt32BE((seq + i * mss) >>> 0, tcp + 4);
      let segFlags = flags;
      if (i + 1 !== count) segFlags &= ~(TCP_FIN | TCP_PSH);
      if (i !== 0) segFlags &= ~TCP_CWR;
      dst[tcp + 13] = segFlags;
      dst.writeUInt16BE(0, tcp + 16);
      dst.writeUInt16BE(foldAndComplement(sumWords(dst, tcp, tcpHeader + chunk, pseudo + tcpHeader + chunk)), tcp + 16);
    }
    out[0] = count;
    out[1] = stride;
    out[2] = prefix.length + headers + lastPayload;
    return 0;
  }

  return { finishChecksum, tcpChecksumValid, segmentTcp };
}
