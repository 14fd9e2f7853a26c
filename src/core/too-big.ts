// Frames too big for the underlay path are never lost silently:
//
//   IPv4 with DF     -> ICMP "fragmentation needed" (type 3 code 4) back into the bridge
//   IPv6             -> ICMPv6 "packet too big" (type 2) back into the bridge
//   IPv4 without DF  -> split into IPv4 fragments that fit, each carried on its own
//   anything else    -> dropped and counted (by the caller)
//
// and on receipt an inner IP packet that claims more bytes than its frame
// holds is recognised as cut short.
//
// The answers are built as the kernel's tunnels build theirs since Linux 5.9
// (iptunnel_pmtud_build_icmp): they come "from" the packet's destination, IP
// and MAC, and go to its source, so the sender's stack takes them as the
// path's own answer, lowers its path MTU and, for TCP, its segment size.
//
// Pure functions over Buffers: they read a frame where it lies and write into
// buffers the caller preallocated. Nothing here allocates. TooBig, at the end,
// is the transmit path's branch that applies them.

import { finishChecksum, internetChecksum, ipv6PseudoHeaderSum, sumWords } from './checksum';
import { isGroupMac } from './ethernet';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, ETH_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN, VLAN_TAG_LEN } from './protocol';
import { copyBytes } from './bytes';
import { FrameOut } from './batches';
import type { IoErrorReports } from './io-errors';
import type { Network } from './network';
import type { PathMtus } from './path-mtu';


/** Smallest MTU an IPv4 link may have (RFC 791). */
export const IPV4_MIN_MTU = 68;
/** Smallest MTU an IPv6 link may have (RFC 8200); hosts never go below it. */
export const IPV6_MIN_MTU = 1280;

const ICMP_HEADER_LEN = 8;
const IP_DF = 0x4000;
const IP_MF = 0x2000;
const IP_OFFSET_MASK = 0x1fff;
const PROTO_ICMP = 1;
const PROTO_ICMPV6 = 58;
/** ICMP errors quote no more than keeps them within 576 bytes (RFC 1812 section 4.3.2.3). */
const ICMP4_MAX_PACKET = 576;
/** ICMPv6 errors stay within the IPv6 minimum MTU (RFC 4443 section 2.4). */
const ICMP6_MAX_PACKET = IPV6_MIN_MTU;
/** TTL / hop limit of the answers. */
const REPLY_TTL = 64;

/** Largest frame buildFragmentationNeeded or buildPacketTooBig writes. */
export const TOO_BIG_REPLY_MAX = ETH_HEADER_LEN + VLAN_TAG_LEN + ICMP6_MAX_PACKET;

/** What oversizeAction says to do with a frame too big for the path. */
export const TOO_BIG_DROP = 0;
/** IPv4 with DF: answer with buildFragmentationNeeded. */
export const TOO_BIG_ICMP4 = 1;
/** IPv6: answer with buildPacketTooBig. */
export const TOO_BIG_ICMP6 = 2;
/** IPv4 without DF: split it with fragmentIpv4. */
export const TOO_BIG_FRAGMENT = 3;
/**
 * IPv6 no larger than the IPv6 minimum MTU on a path below it: no "too big"
 * can help (hosts do not go below 1280), so the packet has to be carried and
 * fragmented underneath IPv6 (RFC 8200 section 5): outer DF clear.
 */
export const TOO_BIG_CARRY = 4;

/** Offset of the L3 header in the frame at buf[frame]: 14, or 18 behind one 802.1Q tag. */
export function l3Offset(buf: Buffer, frame: number): number {
  return ((buf[frame + 12] << 8) | buf[frame + 13]) === ETHERTYPE_VLAN ? ETH_HEADER_LEN + VLAN_TAG_LEN : ETH_HEADER_LEN;
}

/** The frame's ethertype, behind one 802.1Q tag if there is one. */
export function l3Type(buf: Buffer, frame: number): number {
  const at = frame + l3Offset(buf, frame) - 2;
  return (buf[at] << 8) | buf[at + 1];
}

/**
 * What to do with the frame at buf[frame..frame+length) whose packet does not
 * fit `mtu`, the largest L3 packet the path carries in an untagged frame
 * (behind a VLAN tag the packet gets 4 bytes less). One of TOO_BIG_*.
 */
export function oversizeAction(buf: Buffer, frame: number, length: number, mtu: number): number {
  if (length < ETH_HEADER_LEN) return TOO_BIG_DROP;
  const l3 = l3Offset(buf, frame);
  const type = l3Type(buf, frame);
  const packetMtu = mtu - (l3 - ETH_HEADER_LEN);
  const ip = frame + l3;
  const available = length - l3;
  if (type === ETHERTYPE_IPV4) {
    const ihl = ipv4HeaderLength(buf, ip, available);
    if (ihl === 0) return TOO_BIG_DROP;
    if ((buf[ip + 6] & 0x40) !== 0) {
      return packetMtu >= IPV4_MIN_MTU && canAnswerIpv4(buf, frame, ip, ihl, available) ? TOO_BIG_ICMP4 : TOO_BIG_DROP;
    }
    return packetMtu >= ihl + 8 ? TOO_BIG_FRAGMENT : TOO_BIG_DROP;
  }
  if (type === ETHERTYPE_IPV6) {
    if (available < IPV6_HEADER_LEN || buf[ip] >> 4 !== 6) return TOO_BIG_DROP;
    if (packetMtu < IPV6_MIN_MTU && ipv6PacketLength(buf, ip, available) <= IPV6_MIN_MTU) return TOO_BIG_CARRY;
    return canAnswerIpv6(buf, frame, ip, available) ? TOO_BIG_ICMP6 : TOO_BIG_DROP;
  }
  return TOO_BIG_DROP;
}

/**
 * Writes at out[at] the Ethernet frame that tells the sender of the IPv4
 * packet in buf[frame..frame+length) "fragmentation needed and DF set" with
 * next-hop MTU `mtu` (4 less behind a VLAN tag). It goes from the packet's
 * destination, IP and MAC, to its source, keeps the VLAN tag, and quotes the
 * start of the packet. Returns the frame's length, or 0 if the packet must
 * not be answered (not IPv4, not the first fragment, from or to a group
 * address, itself an ICMP error, MTU below 68).
 */
export function buildFragmentationNeeded(buf: Buffer, frame: number, length: number, mtu: number, out: Buffer, at: number): number {
  if (length < ETH_HEADER_LEN || l3Type(buf, frame) !== ETHERTYPE_IPV4) return 0;
  const l3 = l3Offset(buf, frame);
  const ip = frame + l3;
  const available = length - l3;
  const ihl = ipv4HeaderLength(buf, ip, available);
  if (ihl === 0 || !canAnswerIpv4(buf, frame, ip, ihl, available)) return 0;
  const packetMtu = mtu - (l3 - ETH_HEADER_LEN);
  if (packetMtu < IPV4_MIN_MTU || packetMtu > 0xffff) return 0;
  const quoted = Math.min(ipv4PacketLength(buf, ip, ihl, available), ICMP4_MAX_PACKET - IPV4_HEADER_LEN - ICMP_HEADER_LEN);

  writeReplyEthernet(buf, frame, l3, out, at);
  const q = at + l3;
  out[q] = 0x45;
  out[q + 1] = 0;
  out.writeUInt16BE(IPV4_HEADER_LEN + ICMP_HEADER_LEN + quoted, q + 2);
  out.writeUInt16BE(0, q + 4);
  out.writeUInt16BE(IP_DF, q + 6);
  out[q + 8] = REPLY_TTL;
  out[q + 9] = PROTO_ICMP;
  out.writeUInt16BE(0, q + 10);
  copyBytes(buf, ip + 16, ip + 20, out, q + 12); // from the packet's destination
  copyBytes(buf, ip + 12, ip + 16, out, q + 16); // to its source
  out.writeUInt16BE(internetChecksum(out, q, IPV4_HEADER_LEN), q + 10);

  const icmp = q + IPV4_HEADER_LEN;
  out[icmp] = 3; // destination unreachable
  out[icmp + 1] = 4; // fragmentation needed and DF set
  out.writeUInt16BE(0, icmp + 2);
  out.writeUInt16BE(0, icmp + 4);
  out.writeUInt16BE(packetMtu, icmp + 6); // next-hop MTU (RFC 1191)
  copyBytes(buf, ip, ip + quoted, out, icmp + ICMP_HEADER_LEN);
  out.writeUInt16BE(internetChecksum(out, icmp, ICMP_HEADER_LEN + quoted), icmp + 2);
  return l3 + IPV4_HEADER_LEN + ICMP_HEADER_LEN + quoted;
}

/**
 * Writes at out[at] the Ethernet frame that tells the sender of the IPv6
 * packet in buf[frame..frame+length) "packet too big" with MTU `mtu` (4 less
 * behind a VLAN tag; never less than 1280, which is all a host would take).
 * Addressed like buildFragmentationNeeded; the ICMPv6 checksum covers the
 * pseudo-header. Returns the frame's length, or 0 if the packet must not be
 * answered (not IPv6, from an unspecified, loopback or multicast source, to a
 * group MAC, itself an ICMPv6 error).
 */
export function buildPacketTooBig(buf: Buffer, frame: number, length: number, mtu: number, out: Buffer, at: number): number {
  if (length < ETH_HEADER_LEN || l3Type(buf, frame) !== ETHERTYPE_IPV6) return 0;
  const l3 = l3Offset(buf, frame);
  const ip = frame + l3;
  const available = length - l3;
  if (available < IPV6_HEADER_LEN || buf[ip] >> 4 !== 6 || !canAnswerIpv6(buf, frame, ip, available)) return 0;
  const packetMtu = Math.max(mtu - (l3 - ETH_HEADER_LEN), IPV6_MIN_MTU);
  const quoted = Math.min(ipv6PacketLength(buf, ip, available), ICMP6_MAX_PACKET - IPV6_HEADER_LEN - ICMP_HEADER_LEN);
  const icmpLength = ICMP_HEADER_LEN + quoted;

  writeReplyEthernet(buf, frame, l3, out, at);
  const q = at + l3;
  out.writeUInt32BE(0x60000000, q); // version 6, traffic class 0, flow label 0
  out.writeUInt16BE(icmpLength, q + 4);
  out[q + 6] = PROTO_ICMPV6;
  out[q + 7] = REPLY_TTL;
  copyBytes(buf, ip + 24, ip + 40, out, q + 8); // from the packet's destination
  copyBytes(buf, ip + 8, ip + 24, out, q + 24); // to its source

  const icmp = q + IPV6_HEADER_LEN;
  out[icmp] = 2; // packet too big
  out[icmp + 1] = 0;
  out.writeUInt16BE(0, icmp + 2);
  out.writeUInt32BE(packetMtu, icmp + 4);
  copyBytes(buf, ip, ip + quoted, out, icmp + ICMP_HEADER_LEN);
  const sum = sumWords(out, icmp, icmpLength, ipv6PseudoHeaderSum(out, q, icmpLength, PROTO_ICMPV6));
  out.writeUInt16BE(finishChecksum(sum), icmp + 2);
  return l3 + IPV6_HEADER_LEN + icmpLength;
}

/**
 * Splits the IPv4 packet (DF clear) in the frame at buf[frame..frame+length)
 * into fragments whose packets are at most `mtu` bytes (4 less behind a VLAN
 * tag), as a router would (RFC 791): same identification, offsets in units of
 * 8 bytes, MF on all but the last (and on the last if the packet was itself a
 * non-final fragment), options without the copy flag turned into NOPs after
 * the first fragment, header checksums recomputed. Each fragment is a whole
 * Ethernet frame with the original's Ethernet header and VLAN tag.
 *
 * Fragment i goes to out[offsets[i]], lengths[i] bytes, with `headroom` free
 * bytes in front of it (room for the VXLAN header), all inside out[start..end).
 * Returns the number of fragments, or 0 if the packet cannot be fragmented
 * (DF set, malformed, MTU below header + 8, more fragments than offsets holds,
 * or out of room).
 */
export function fragmentIpv4(
  buf: Buffer,
  frame: number,
  length: number,
  mtu: number,
  out: Buffer,
  start: number,
  end: number,
  headroom: number,
  offsets: Uint32Array,
  lengths: Uint32Array,
): number {
  if (length < ETH_HEADER_LEN || l3Type(buf, frame) !== ETHERTYPE_IPV4) return 0;
  const l3 = l3Offset(buf, frame);
  const ip = frame + l3;
  const available = length - l3;
  const ihl = ipv4HeaderLength(buf, ip, available);
  if (ihl === 0 || !ipv4OptionsValid(buf, ip, ihl)) return 0;
  const flags = buf.readUInt16BE(ip + 6);
  if ((flags & IP_DF) !== 0) return 0;
  const total = buf.readUInt16BE(ip + 2);
  if (total < ihl || total > available) return 0;
  const packetMtu = mtu - (l3 - ETH_HEADER_LEN);
  const perFragment = Math.floor((packetMtu - ihl) / 8) * 8;
  if (perFragment < 8) return 0;
  const data = total - ihl;
  const count = Math.max(1, Math.ceil(data / perFragment));
  if (count > offsets.length || count > lengths.length) return 0;
  const firstOffset = flags & IP_OFFSET_MASK;
  const lastFlags = flags & IP_MF;

  let cursor = start;
  for (let i = 0; i < count; i++) {
    const chunk = Math.min(perFragment, data - i * perFragment);
    const at = cursor + headroom;
    const fragmentLength = l3 + ihl + chunk;
    if (at + fragmentLength > end) return 0;
    copyBytes(buf, frame, ip + ihl, out, at); // Ethernet header, VLAN tag, IPv4 header with options
    const q = at + l3;
    if (i > 0) nopUncopiedOptions(out, q, ihl);
    out.writeUInt16BE(ihl + chunk, q + 2);
    const offset = firstOffset + (i * perFragment) / 8;
    out.writeUInt16BE((flags & 0x8000) | (i === count - 1 ? lastFlags : IP_MF) | offset, q + 6);
    out.writeUInt16BE(0, q + 10);
    out.writeUInt16BE(internetChecksum(out, q, ihl), q + 10);
    const from = ip + ihl + i * perFragment;
    copyBytes(buf, from, from + chunk, out, q + ihl);
    offsets[i] = at;
    lengths[i] = fragmentLength;
    cursor = at + fragmentLength + ((8 - (fragmentLength & 7)) & 7);
  }
  return count;
}

/**
 * Outer DF for --df inherit, as the kernel's vxlan decides it: set for IPv4
 * with DF and for IPv6 (which routers never fragment), clear otherwise.
 */
export function wantsOuterDf(buf: Buffer, frame: number, length: number): boolean {
  if (length < ETH_HEADER_LEN) return false;
  const l3 = l3Offset(buf, frame);
  const type = l3Type(buf, frame);
  if (type === ETHERTYPE_IPV4) return length >= l3 + IPV4_HEADER_LEN && (buf[frame + l3 + 6] & 0x40) !== 0;
  return type === ETHERTYPE_IPV6;
}

/**
 * True if the frame at buf[frame..frame+length) carries an IPv4 or IPv6
 * packet that claims more bytes than the frame holds: it was cut short on the
 * way. Frames that are not IP (or whose version field says otherwise) are not
 * judged; Ethernet padding after the packet is fine.
 */
export function isTruncated(buf: Buffer, frame: number, length: number): boolean {
  if (length < ETH_HEADER_LEN) return true;
  const l3 = l3Offset(buf, frame);
  const type = l3Type(buf, frame);
  const ip = frame + l3;
  const available = length - l3;
  if (type === ETHERTYPE_IPV4) {
    if (available < 1 || buf[ip] >> 4 !== 4) return available < 0;
    return available < IPV4_HEADER_LEN || buf.readUInt16BE(ip + 2) > available;
  }
  if (type === ETHERTYPE_IPV6) {
    if (available < 1 || buf[ip] >> 4 !== 6) return available < 0;
    if (available < IPV6_HEADER_LEN) return true;
    const payload = buf.readUInt16BE(ip + 4);
    return payload !== 0 && IPV6_HEADER_LEN + payload > available; // 0: jumbogram, sized elsewhere
  }
  return false;
}

// ------------------------------------------------------------------ helpers

/** The header length of a plausible IPv4 header at buf[ip], or 0. */
function ipv4HeaderLength(buf: Buffer, ip: number, available: number): number {
  if (available < IPV4_HEADER_LEN || buf[ip] >> 4 !== 4) return 0;
  const ihl = (buf[ip] & 0x0f) * 4;
  return ihl >= IPV4_HEADER_LEN && ihl <= available ? ihl : 0;
}

/** The IPv4 packet's length, trusting the header only where the frame agrees. */
function ipv4PacketLength(buf: Buffer, ip: number, ihl: number, available: number): number {
  const total = buf.readUInt16BE(ip + 2);
  return total >= ihl && total <= available ? total : available;
}

function ipv6PacketLength(buf: Buffer, ip: number, available: number): number {
  const payload = buf.readUInt16BE(ip + 4);
  return payload !== 0 && IPV6_HEADER_LEN + payload <= available ? IPV6_HEADER_LEN + payload : available;
}

/** The answer goes to the sender's MAC, from the MAC it sent to, with the same tag and ethertype. */
function writeReplyEthernet(buf: Buffer, frame: number, l3: number, out: Buffer, at: number): void {
  copyBytes(buf, frame + 6, frame + 12, out, at);
  copyBytes(buf, frame, frame + 6, out, at + 6);
  copyBytes(buf, frame + 12, frame + l3, out, at + 12);
}

function canAnswerIpv4(buf: Buffer, frame: number, ip: number, ihl: number, available: number): boolean {
  if (isGroupMac(buf, frame)) return false; // the answer's source MAC would be a group address
  if ((buf.readUInt16BE(ip + 6) & IP_OFFSET_MASK) !== 0) return false; // ICMP speaks of first fragments only (RFC 792)
  const source = buf[ip + 12];
  if (source === 0 || source === 127 || (source & 0xf0) === 0xe0 || isAllOnes(buf, ip + 12)) return false;
  if ((buf[ip + 16] & 0xf0) === 0xe0 || isAllOnes(buf, ip + 16)) return false;
  if (buf[ip + 9] === PROTO_ICMP && available > ihl) {
    const type = buf[ip + ihl];
    // Never answer an error with an error (RFC 1122 section 3.2.2).
    if (type === 3 || type === 4 || type === 5 || type === 11 || type === 12) return false;
  }
  return true;
}

function canAnswerIpv6(buf: Buffer, frame: number, ip: number, available: number): boolean {
  if (isGroupMac(buf, frame)) return false;
  const source = ip + 8;
  if (buf[source] === 0xff) return false; // multicast
  let high = 0;
  for (let i = 0; i < 15; i++) high |= buf[source + i];
  if (high === 0 && buf[source + 15] <= 1) return false; // :: and ::1
  return !carriesIcmpv6Error(buf, ip, available);
}

/** Walks the extension headers to the upper layer; true if it is an ICMPv6 error (type < 128). */
function carriesIcmpv6Error(buf: Buffer, ip: number, available: number): boolean {
  let next = buf[ip + 6];
  let at = IPV6_HEADER_LEN;
  for (let hops = 0; hops < 8; hops++) {
    if (next === PROTO_ICMPV6) return at < available && buf[ip + at] < 128;
    if (at + 8 > available) return false;
    if (next === 0 || next === 43 || next === 60) {
      next = buf[ip + at];
      at += (buf[ip + at + 1] + 1) * 8;
    } else if (next === 51) {
      next = buf[ip + at];
      at += (buf[ip + at + 1] + 2) * 4;
    } else if (next === 44) {
      if ((buf.readUInt16BE(ip + at + 2) & 0xfff8) !== 0) return false; // a later fragment: no upper header here
      next = buf[ip + at];
      at += 8;
    } else {
      return false;
    }
  }
  return false;
}

function isAllOnes(buf: Buffer, at: number): boolean {
  return buf[at] === 255 && buf[at + 1] === 255 && buf[at + 2] === 255 && buf[at + 3] === 255;
}

/** Options well formed: every option inside the header, lengths at least 2. */
function ipv4OptionsValid(buf: Buffer, ip: number, ihl: number): boolean {
  let o = IPV4_HEADER_LEN;
  while (o < ihl) {
    const type = buf[ip + o];
    if (type === 0) return true; // end of options; the rest is padding
    if (type === 1) {
      o++;
      continue;
    }
    if (o + 1 >= ihl) return false;
    const length = buf[ip + o + 1];
    if (length < 2 || o + length > ihl) return false;
    o += length;
  }
  return true;
}

/** After the first fragment only options with the copy flag stay; the others become NOPs (as Linux does). */
function nopUncopiedOptions(out: Buffer, ip: number, ihl: number): void {
  let o = IPV4_HEADER_LEN;
  while (o < ihl) {
    const type = out[ip + o];
    if (type === 0) return;
    if (type === 1) {
      o++;
      continue;
    }
    const length = out[ip + o + 1];
    if ((type & 0x80) === 0) out.fill(1, ip + o, ip + o + length);
    o += length;
  }
}

// ------------------------------------------------------------------ the engine's oversize branch

/** What the too-big branch needs from the transmit path. */
export interface Forwarder {
  /** Encapsulates and queues the frame at bytes[frame..+length] of the transmit slab. */
  forward(network: Network, frame: number, length: number, remoteId: number, dontFragment: number): void;
  /** Sends what is queued, before the slab's scratch area is reused. */
  flushSends(): void;
}

/** Most fragments one frame is split into; a frame that needs more is dropped as oversize. */
const MAX_FRAGMENTS = 64;

/**
 * A frame larger than the path to its destination: answered with ICMP
 * "too big", split into fragments, carried for the outer IP layer to
 * fragment, or dropped and counted. Never lost without a trace.
 */
export class TooBig {
  /** ICMP answers are built here and written to the TAP one at a time. */
  private readonly reply = new FrameOut(1, TOO_BIG_REPLY_MAX);
  private readonly fragmentOffsets = new Uint32Array(MAX_FRAGMENTS);
  private readonly fragmentLengths = new Uint32Array(MAX_FRAGMENTS);

  constructor(
    private readonly pathMtus: PathMtus,
    private readonly reports: IoErrorReports,
    /** --df set: the outer IPv4 packet may not be fragmented. */
    private readonly dontFragment: boolean,
    private readonly tx: Forwarder,
  ) {}

  /** The frame at bytes[frame..+length]; fragments go to bytes[scratch..], each behind headroom. */
  handle(network: Network, bytes: Buffer, frame: number, length: number, remoteId: number, scratch: number, headroom: number): void {
    const counters = network.counters;
    const mtu = this.pathMtus.of(network, remoteId);
    switch (oversizeAction(bytes, frame, length, mtu)) {
      case TOO_BIG_ICMP4:
        this.answer(network, buildFragmentationNeeded(bytes, frame, length, mtu, this.reply.bytes, 0));
        return;
      case TOO_BIG_ICMP6:
        this.answer(network, buildPacketTooBig(bytes, frame, length, mtu, this.reply.bytes, 0));
        return;
      case TOO_BIG_FRAGMENT: {
        // Fragments live in the slab's scratch area: send those of an earlier frame first.
        this.tx.flushSends();
        const offsets = this.fragmentOffsets;
        const lengths = this.fragmentLengths;
        const n = fragmentIpv4(bytes, frame, length, mtu, bytes, scratch, bytes.length, headroom, offsets, lengths);
        if (n === 0) break;
        counters.fragmentedFrames++;
        for (let i = 0; i < n; i++) this.tx.forward(network, offsets[i], lengths[i], remoteId, 0);
        return;
      }
      case TOO_BIG_CARRY:
        // IPv6 within 1280 bytes: the outer IPv4 packet must be fragmented, so DF clear.
        if (this.dontFragment) break;
        this.tx.forward(network, frame, length, remoteId, 0);
        return;
    }
    counters.drops.oversize++;
  }

  /** Writes the ICMP answer built in this.reply into the network's TAP. */
  private answer(network: Network, length: number): void {
    const counters = network.counters;
    if (length === 0) {
      counters.drops.oversize++;
      return;
    }
    const reply = this.reply;
    reply.count = 1;
    reply.lengths[0] = length;
    network.port.writeFrames(reply);
    const errno = reply.results[0];
    if (errno !== 0) {
      counters.drops.tap_write++;
      this.reports.report('tap_write', errno, network.vni);
      return;
    }
    counters.icmpTooBig++;
  }
}
