// The MACs behind this host's TAP (local containers), with the last IPv4 and
// IPv6 address each was seen using (ARP sender, IPv4/IPv6 source). The data
// path only marks what it sees, in fixed typed arrays (no allocation, bounded
// by capacity); the control plane reads the changes and the aged entries
// every so often, off the data path, and announces them.

import type { Clock } from './clock';
import { isValidSourceMac, macHigh, macLow } from './ethernet';

const EMPTY = -1;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV6 = 0x86dd;

export interface LocalMac {
  macHigh: number;
  macLow: number;
  /** IPv4 as a 32-bit number, or undefined. */
  ipv4: number | undefined;
  /** IPv6 as 16 bytes, or undefined. */
  ipv6: Buffer | undefined;
}

export class LocalMacs {
  /** Frames whose source MAC found no room (the table is full). */
  full = 0;
  private readonly mask: number;
  private readonly keyHigh: Int32Array;
  private readonly keyLow: Uint32Array;
  private readonly lastSeen: Float64Array;
  /** Signed, so that addresses stay small integers (no boxing on the data path). */
  private readonly ipv4: Int32Array;
  private readonly ipv6: Uint8Array;
  /** Bit 0: has IPv4; bit 1: has IPv6; bit 2: changed since the last changes(). */
  private readonly flags: Uint8Array;
  private count = 0;
  /** The time frames are stamped with, moved on by tick() off the data path: a clock call per frame would allocate. */
  private readonly now = new Float64Array(1);

  constructor(
    readonly capacity: number,
    private readonly clock: Clock,
  ) {
    let slots = 16;
    while (slots < capacity * 2) slots *= 2;
    this.mask = slots - 1;
    this.keyHigh = new Int32Array(slots).fill(EMPTY);
    this.keyLow = new Uint32Array(slots);
    this.lastSeen = new Float64Array(slots);
    this.ipv4 = new Int32Array(slots);
    this.ipv6 = new Uint8Array(slots * 16);
    this.flags = new Uint8Array(slots);
    this.now[0] = clock.now();
  }

  /** Moves the time frames are stamped with to now; call every so often (the announcer does, twice a second). */
  tick(): void {
    this.now[0] = this.clock.now();
  }

  get size(): number {
    return this.count;
  }

  // HOT PATH: a frame read from the TAP at bytes[frame..+length].
  observe(bytes: Buffer, frame: number, length: number): void {
    if (length < 14) return;
    const src = frame + 6;
    if (!isValidSourceMac(bytes, src)) return;
    const high = macHigh(bytes, src);
    const low = macLow(bytes, src);
    let slot = this.home(high, low);
    for (;;) {
      const h = this.keyHigh[slot];
      if (h === EMPTY) {
        if (this.count >= this.capacity) {
          this.full++;
          return;
        }
        this.keyHigh[slot] = high;
        this.keyLow[slot] = low;
        this.flags[slot] = 4;
        this.count++;
        break;
      }
      if (h === high && this.keyLow[slot] === low) break;
      slot = (slot + 1) & this.mask;
    }
    this.lastSeen[slot] = this.now[0];
    const type = (bytes[frame + 12] << 8) | bytes[frame + 13];
    if (type === ETHERTYPE_ARP) {
      // Ethernet/IPv4 ARP: the sender's protocol address (gratuitous ARP included).
      if (length >= 42 && bytes[frame + 16] === 0x08 && bytes[frame + 17] === 0 && bytes[frame + 18] === 6 && bytes[frame + 19] === 4) {
        this.setIpv4(slot, bytes.readInt32BE(frame + 28));
      }
    } else if (type === ETHERTYPE_IPV4) {
      if (length >= 34 && bytes[frame + 14] >> 4 === 4) this.setIpv4(slot, bytes.readInt32BE(frame + 26));
    } else if (type === ETHERTYPE_IPV6) {
      if (length >= 54 && bytes[frame + 14] >> 4 === 6) this.setIpv6(slot, bytes, frame + 22);
    }
  }

  /** Entries new or changed since the last call (off the data path). */
  changes(): LocalMac[] {
    const out: LocalMac[] = [];
    for (let slot = 0; slot <= this.mask; slot++) {
      if (this.keyHigh[slot] === EMPTY || (this.flags[slot] & 4) === 0) continue;
      this.flags[slot] &= ~4;
      out.push(this.entry(slot));
    }
    return out;
  }

  /** Removes entries not seen for ageingMs; returns them. */
  ageOut(ageingMs: number): LocalMac[] {
    this.tick();
    const now = this.now[0];
    const out: LocalMac[] = [];
    for (let slot = 0; slot <= this.mask; ) {
      if (this.keyHigh[slot] !== EMPTY && now - this.lastSeen[slot] > ageingMs) {
        out.push(this.entry(slot));
        this.removeSlot(slot);
        continue; // an entry may have shifted into this slot
      }
      slot++;
    }
    return out;
  }

  /** Forgets a MAC (it moved to another host): seen here again, it is new again. */
  forget(high: number, low: number): void {
    let slot = this.home(high, low);
    while (this.keyHigh[slot] !== EMPTY) {
      if (this.keyHigh[slot] === high && this.keyLow[slot] === low) return this.removeSlot(slot);
      slot = (slot + 1) & this.mask;
    }
  }

  private entry(slot: number): LocalMac {
    const f = this.flags[slot];
    return {
      macHigh: this.keyHigh[slot],
      macLow: this.keyLow[slot],
      ipv4: (f & 1) !== 0 ? this.ipv4[slot] >>> 0 : undefined,
      ipv6: (f & 2) !== 0 ? Buffer.from(this.ipv6.subarray(slot * 16, slot * 16 + 16)) : undefined,
    };
  }

  private setIpv4(slot: number, address: number): void {
    // 0.0.0.0 (DHCP, ARP probes), 255.255.255.255 and multicast are nobody's address.
    if (address === 0 || address >>> 28 === 0xe || address === -1) return;
    if ((this.flags[slot] & 1) !== 0 && this.ipv4[slot] === address) return;
    this.ipv4[slot] = address;
    this.flags[slot] |= 1 | 4;
  }

  private setIpv6(slot: number, bytes: Buffer, offset: number): void {
    // Unspecified (DAD), link-local and multicast sources are not announced.
    if (bytes[offset] === 0xff || (bytes[offset] === 0xfe && (bytes[offset + 1] & 0xc0) === 0x80)) return;
    let zero = true;
    let same = (this.flags[slot] & 2) !== 0;
    const base = slot * 16;
    for (let i = 0; i < 16; i++) {
      if (bytes[offset + i] !== 0) zero = false;
      if (this.ipv6[base + i] !== bytes[offset + i]) same = false;
    }
    if (zero || same) return;
    for (let i = 0; i < 16; i++) this.ipv6[base + i] = bytes[offset + i];
    this.flags[slot] |= 2 | 4;
  }

  private home(high: number, low: number): number {
    let h = Math.imul(low ^ 0x27d4eb2f, 0x9e3779b1) ^ Math.imul(high + 0x165667b1, 0x85ebca6b);
    h ^= h >>> 15;
    return h & this.mask;
  }

  /** Backward-shift deletion, as in fdb.ts. */
  private removeSlot(hole: number): void {
    const mask = this.mask;
    let next = (hole + 1) & mask;
    while (this.keyHigh[next] !== EMPTY) {
      const home = this.home(this.keyHigh[next], this.keyLow[next]);
      if (((hole - home) & mask) < ((next - home) & mask)) {
        this.keyHigh[hole] = this.keyHigh[next];
        this.keyLow[hole] = this.keyLow[next];
        this.lastSeen[hole] = this.lastSeen[next];
        this.ipv4[hole] = this.ipv4[next];
        this.ipv6.copyWithin(hole * 16, next * 16, next * 16 + 16);
        this.flags[hole] = this.flags[next];
        hole = next;
      }
      next = (next + 1) & mask;
    }
    this.keyHigh[hole] = EMPTY;
    this.count--;
  }
}
