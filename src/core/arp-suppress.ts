// ARP and IPv6 neighbour-discovery suppression: an ARP request or neighbour
// solicitation from a local container, for an IP the control plane says lives
// behind another VTEP, is answered here, into the TAP, instead of being
// flooded to every peer (as the kernel's neigh_suppress and EVPN do). The
// bindings (IP -> MAC) are replaced off the data path; lookups and answers
// use fixed typed arrays and one preallocated frame.

import { ipv6PseudoHeaderSum, sumWords, finishChecksum } from './checksum';
import { addressRecord } from './address';
import { copyBytes } from './bytes';
import { parseMac } from './ethernet';
import type { LocalMacs } from './local-macs';
import type { FramePort } from './ports';
import type { FrameBatch } from './batches';

export class SuppressionCounters {
  arpSuppressed = 0;
  ndSuppressed = 0;
}

export interface NeighbourBinding {
  /** Canonical IPv4 or IPv6 address. */
  ip: string;
  mac: string;
}

const ARP_FRAME_LEN = 60;
const NA_FRAME_LEN = 14 + 40 + 32;

export class NeighbourSuppressor {
  readonly counters = new SuppressionCounters();
  private v4 = new AddressTable(4, 0);
  private v6 = new AddressTable(16, 0);
  private readonly frame = Buffer.alloc(128);
  /** The one-frame batch a reply is written in (a plain frame: the port adds any virtio header). */
  private readonly reply: FrameBatch = {
    bytes: this.frame,
    count: 1,
    offsets: new Uint32Array(1),
    lengths: new Uint32Array(1),
    results: new Int32Array(1),
    ownHeaders: false,
    prependHeader: new Uint8Array(1),
  };

  /** Replaces every binding (off the data path). */
  replace(bindings: readonly NeighbourBinding[]): void {
    const v4 = bindings.filter((b) => !b.ip.includes(':'));
    const v6 = bindings.filter((b) => b.ip.includes(':'));
    this.v4 = new AddressTable(4, v4.length);
    this.v6 = new AddressTable(16, v6.length);
    for (const b of v4) this.v4.set(Buffer.from(b.ip.split('.').map(Number)), 0, b.mac);
    for (const b of v6) this.v6.set(ipv6Bytes(b.ip), 0, b.mac);
  }

  get size(): number {
    return this.v4.size + this.v6.size;
  }

  // HOT PATH: true if the frame at bytes[frame..+length] was answered here (and must not be flooded).
  answer(bytes: Buffer, frame: number, length: number, port: FramePort): boolean {
    if (length < 42) return false;
    const type = (bytes[frame + 12] << 8) | bytes[frame + 13];
    if (type === 0x0806) return this.answerArp(bytes, frame, port);
    if (type === 0x86dd && length >= 78 && bytes[frame + 20] === 58 && bytes[frame + 54] === 135 && bytes[frame + 55] === 0) {
      return this.answerNs(bytes, frame, port);
    }
    return false;
  }

  private answerArp(bytes: Buffer, frame: number, port: FramePort): boolean {
    // Ethernet/IPv4 request (opcode 1); not a probe (sender 0.0.0.0) nor gratuitous (sender = target).
    if (bytes[frame + 14] !== 0 || bytes[frame + 15] !== 1 || bytes[frame + 16] !== 0x08 || bytes[frame + 17] !== 0) return false;
    if (bytes[frame + 18] !== 6 || bytes[frame + 19] !== 4 || bytes[frame + 20] !== 0 || bytes[frame + 21] !== 1) return false;
    const spa = bytes.readInt32BE(frame + 28);
    if (spa === 0 || spa === bytes.readInt32BE(frame + 38)) return false;
    const slot = this.v4.find(bytes, frame + 38);
    if (slot < 0) return false;
    const out = this.frame;
    // Ethernet: to the requester, from the MAC asked for.
    copyBytes(bytes, frame + 6, frame + 12, out, 0);
    this.v4.writeMac(slot, out, 6);
    out[12] = 0x08;
    out[13] = 0x06;
    // ARP reply: htype 1, ptype IPv4, 6, 4, opcode 2.
    out.writeUInt32BE(0x00010800, 14);
    out.writeUInt32BE(0x06040002, 18);
    this.v4.writeMac(slot, out, 22);
    copyBytes(bytes, frame + 38, frame + 42, out, 28); // sender IP: the one asked for
    copyBytes(bytes, frame + 22, frame + 32, out, 32); // target: the requester's MAC and IP
    for (let i = 42; i < ARP_FRAME_LEN; i++) out[i] = 0;
    if (!this.write(port, ARP_FRAME_LEN)) return false;
    this.counters.arpSuppressed++;
    return true;
  }

  private answerNs(bytes: Buffer, frame: number, port: FramePort): boolean {
    // Not from :: (duplicate address detection: that one must see no answer unless the address is taken for real).
    let unspecified = true;
    for (let i = 0; i < 16; i++) if (bytes[frame + 22 + i] !== 0) unspecified = false;
    if (unspecified) return false;
    const slot = this.v6.find(bytes, frame + 62);
    if (slot < 0) return false;
    const out = this.frame;
    copyBytes(bytes, frame + 6, frame + 12, out, 0);
    this.v6.writeMac(slot, out, 6);
    out[12] = 0x86;
    out[13] = 0xdd;
    // IPv6: payload 32 (NA 24 + target link-layer option 8), ICMPv6, hop limit 255.
    out.writeUInt32BE(0x60000000, 14);
    out.writeUInt16BE(32, 18);
    out[20] = 58;
    out[21] = 255;
    copyBytes(bytes, frame + 62, frame + 78, out, 22); // source: the target address
    copyBytes(bytes, frame + 22, frame + 38, out, 38); // destination: the solicitor
    // ICMPv6 neighbour advertisement: solicited and override flags.
    out[54] = 136;
    out[55] = 0;
    out.writeUInt16BE(0, 56);
    out.writeUInt32BE(0x60000000, 58);
    copyBytes(bytes, frame + 62, frame + 78, out, 62);
    out[78] = 2;
    out[79] = 1;
    this.v6.writeMac(slot, out, 80);
    out.writeUInt16BE(finishChecksum(sumWords(out, 54, 32, ipv6PseudoHeaderSum(out, 14, 32, 58))), 56);
    if (!this.write(port, NA_FRAME_LEN)) return false;
    this.counters.ndSuppressed++;
    return true;
  }

  private write(port: FramePort, length: number): boolean {
    this.reply.lengths[0] = length;
    port.writeFrames(this.reply);
    return this.reply.results[0] === 0;
  }
}

/** Open addressing over fixed-width addresses (4 or 16 bytes) -> MAC. */
class AddressTable {
  readonly size: number;
  private readonly mask: number;
  private readonly keys: Uint8Array;
  private readonly used: Uint8Array;
  private readonly macs: Uint8Array;

  constructor(
    private readonly width: number,
    capacity: number,
  ) {
    let slots = 16;
    while (slots < capacity * 2) slots *= 2;
    this.mask = slots - 1;
    this.keys = new Uint8Array(slots * width);
    this.used = new Uint8Array(slots);
    this.macs = new Uint8Array(slots * 6);
    this.size = capacity;
  }

  set(address: Uint8Array, offset: number, mac: string): void {
    const parsed = parseMac(mac);
    if (!parsed) return;
    let slot = this.hash(address, offset);
    while (this.used[slot] !== 0 && !this.equals(slot, address, offset)) slot = (slot + 1) & this.mask;
    this.used[slot] = 1;
    for (let i = 0; i < this.width; i++) this.keys[slot * this.width + i] = address[offset + i];
    const m = slot * 6;
    this.macs[m] = parsed.high >>> 8;
    this.macs[m + 1] = parsed.high & 0xff;
    this.macs[m + 2] = parsed.low >>> 24;
    this.macs[m + 3] = (parsed.low >>> 16) & 0xff;
    this.macs[m + 4] = (parsed.low >>> 8) & 0xff;
    this.macs[m + 5] = parsed.low & 0xff;
  }

  // HOT PATH
  find(bytes: Uint8Array, offset: number): number {
    let slot = this.hash(bytes, offset);
    while (this.used[slot] !== 0) {
      if (this.equals(slot, bytes, offset)) return slot;
      slot = (slot + 1) & this.mask;
    }
    return -1;
  }

  writeMac(slot: number, out: Buffer, offset: number): void {
    for (let i = 0; i < 6; i++) out[offset + i] = this.macs[slot * 6 + i];
  }

  private equals(slot: number, bytes: Uint8Array, offset: number): boolean {
    const base = slot * this.width;
    for (let i = 0; i < this.width; i++) if (this.keys[base + i] !== bytes[offset + i]) return false;
    return true;
  }

  private hash(bytes: Uint8Array, offset: number): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < this.width; i++) h = Math.imul(h ^ bytes[offset + i], 0x01000193);
    h ^= h >>> 15;
    return h & this.mask;
  }
}

function ipv6Bytes(address: string): Buffer {
  return addressRecord(address, 0).subarray(0, 16);
}

/**
 * What a network does with each frame from its TAP before forwarding it (set
 * by the control plane): note the local MAC and IP, and answer ARP/ND it can.
 */
export class TapObserver {
  constructor(
    private readonly port: FramePort,
    readonly localMacs: LocalMacs | undefined,
    readonly suppressor: NeighbourSuppressor | undefined,
  ) {}

  // HOT PATH: true if the frame was consumed (answered here) and must not be forwarded.
  fromTap(bytes: Buffer, frame: number, length: number): boolean {
    if (this.localMacs !== undefined) this.localMacs.observe(bytes, frame, length);
    return this.suppressor !== undefined && this.suppressor.answer(bytes, frame, length, this.port);
  }
}
