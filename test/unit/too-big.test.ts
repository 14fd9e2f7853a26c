// Path MTU guards: the ICMP "fragmentation needed" and ICMPv6 "packet too big"
// answers, inner IPv4 fragmentation, the truncation check, and the engine's
// oversize branch over in-memory ports.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ADDR_RECORD_LEN, addressRecord, recordAddress } from '../../src/core/address';
import { finishChecksum, internetChecksum, ipv6PseudoHeaderSum, sumWords } from '../../src/core/checksum';
import { ManualClock } from '../../src/core/clock';
import { Engine } from '../../src/core/engine';
import { parseMac } from '../../src/core/ethernet';
import { Fdb } from '../../src/core/fdb';
import { Network } from '../../src/core/network';
import {
  TOO_BIG_CARRY,
  TOO_BIG_DROP,
  TOO_BIG_FRAGMENT,
  TOO_BIG_ICMP4,
  TOO_BIG_ICMP6,
  buildFragmentationNeeded,
  buildPacketTooBig,
  fragmentIpv4,
  isTruncated,
  oversizeAction,
  wantsOuterDf,
} from '../../src/core/too-big';
import type { SendQueue, Slab } from '../../src/core/batches';
import { SEND_DONE, type DatagramPort, type SendOutcome } from '../../src/core/ports';
import { NO_PATH_LIMIT, RemoteTable } from '../../src/core/remotes';
import { FakeTap } from '../helpers/sim';

// ------------------------------------------------------------------ packet builders

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';

function mac(text: string): Buffer {
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}

function ipv4(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number));
}

function ipv6(text: string): Buffer {
  const record = addressRecord(text, 0);
  return Buffer.from(record.subarray(0, 16));
}

/** A checksum computed the slow, obvious way, to check the module's against. */
function referenceChecksum(bytes: Buffer): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i] << 8) + (i + 1 < bytes.length ? bytes[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return ~sum & 0xffff;
}

interface Ipv4Options {
  src?: string;
  dst?: string;
  df?: boolean;
  mf?: boolean;
  offset?: number;
  id?: number;
  ttl?: number;
  protocol?: number;
  options?: Buffer;
  payload: Buffer;
}

function ipv4Packet(o: Ipv4Options): Buffer {
  const options = o.options ?? Buffer.alloc(0);
  const ihl = 20 + options.length;
  const header = Buffer.alloc(ihl);
  header[0] = 0x40 | (ihl / 4);
  header.writeUInt16BE(ihl + o.payload.length, 2);
  header.writeUInt16BE(o.id ?? 0x1234, 4);
  header.writeUInt16BE((o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | (o.offset ?? 0), 6);
  header[8] = o.ttl ?? 64;
  header[9] = o.protocol ?? 17;
  ipv4(o.src ?? '172.18.0.11').copy(header, 12);
  ipv4(o.dst ?? '172.18.0.12').copy(header, 16);
  options.copy(header, 20);
  header.writeUInt16BE(referenceChecksum(header), 10);
  return Buffer.concat([header, o.payload]);
}

function ipv6Packet(o: { src?: string; dst?: string; nextHeader?: number; payload: Buffer }): Buffer {
  const header = Buffer.alloc(40);
  header.writeUInt32BE(0x60000000, 0);
  header.writeUInt16BE(o.payload.length, 4);
  header[6] = o.nextHeader ?? 17;
  header[7] = 64;
  ipv6(o.src ?? 'fd18::11').copy(header, 8);
  ipv6(o.dst ?? 'fd18::12').copy(header, 24);
  return Buffer.concat([header, o.payload]);
}

function ethernet(packet: Buffer, etherType: number, o: { dst?: string; src?: string; vlan?: number } = {}): Buffer {
  const head = Buffer.alloc(o.vlan === undefined ? 14 : 18);
  mac(o.dst ?? MAC_B).copy(head, 0);
  mac(o.src ?? MAC_A).copy(head, 6);
  if (o.vlan !== undefined) {
    head.writeUInt16BE(0x8100, 12);
    head.writeUInt16BE(o.vlan, 14);
  }
  head.writeUInt16BE(etherType, head.length - 2);
  return Buffer.concat([head, packet]);
}

/** An IPv4 frame whose packet is `size` bytes long. */
function ipv4Frame(size: number, o: Partial<Ipv4Options> & { vlan?: number; dstMac?: string } = {}): Buffer {
  const optionsLength = o.options?.length ?? 0;
  const packet = ipv4Packet({ ...o, payload: o.payload ?? randomBytes(size - 20 - optionsLength) });
  return ethernet(packet, 0x0800, { vlan: o.vlan, dst: o.dstMac });
}

function ipv6Frame(size: number, o: { src?: string; dst?: string; nextHeader?: number; payload?: Buffer; vlan?: number; dstMac?: string } = {}): Buffer {
  const packet = ipv6Packet({ ...o, payload: o.payload ?? randomBytes(size - 40) });
  return ethernet(packet, 0x86dd, { vlan: o.vlan, dst: o.dstMac });
}

/** Puts a frame at an offset inside a bigger buffer, as frames sit in the engine's slab. */
function inSlab(frame: Buffer, at = 64): Buffer {
  const slab = Buffer.alloc(at + frame.length + 64, 0xee);
  frame.copy(slab, at);
  return slab;
}

// ------------------------------------------------------------------ checksums

describe('Internet checksum', () => {
  it('matches the RFC 1071 example', () => {
    const bytes = Buffer.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    expect(internetChecksum(bytes, 0, bytes.length)).toBe(0x220d);
  });

  it('gives a known IPv4 header its checksum, and a correct header sums to zero', () => {
    const header = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(internetChecksum(header, 0, 20)).toBe(0xb861);
    header.writeUInt16BE(0xb861, 10);
    expect(internetChecksum(header, 0, 20)).toBe(0);
  });

  it('pads an odd last byte with zero and agrees with the slow way on random data', () => {
    for (const length of [1, 3, 17, 1001, 65_535]) {
      const bytes = randomBytes(length + 3);
      expect(internetChecksum(bytes, 3, length)).toBe(referenceChecksum(bytes.subarray(3)));
      expect(finishChecksum(sumWords(bytes, 3, length))).toBe(referenceChecksum(bytes.subarray(3)));
    }
  });
});

// ------------------------------------------------------------------ ICMP answers

/** Checks the Ethernet header of an answer: back to A, from B, same tag. */
function expectAnswerEthernet(reply: Buffer, original: Buffer, l3: number): void {
  expect(reply.subarray(0, 6)).toEqual(original.subarray(6, 12));
  expect(reply.subarray(6, 12)).toEqual(original.subarray(0, 6));
  expect(reply.subarray(12, l3)).toEqual(original.subarray(12, l3));
}

describe('ICMP "fragmentation needed" (IPv4, DF set)', () => {
  const out = Buffer.alloc(2048);

  it('goes from the destination back to the sender, with the MTU and a valid checksum, quoting 548 bytes', () => {
    const frame = ipv4Frame(1500, { df: true, ttl: 61 });
    const slab = inSlab(frame);
    const n = buildFragmentationNeeded(slab, 64, frame.length, 1450, out, 10);
    expect(n).toBe(14 + 576);
    const reply = out.subarray(10, 10 + n);
    expectAnswerEthernet(reply, frame, 14);
    const ip = reply.subarray(14);
    expect(ip[0]).toBe(0x45);
    expect(ip.readUInt16BE(2)).toBe(576);
    expect(ip.readUInt16BE(6)).toBe(0x4000);
    expect(ip[8]).toBe(64);
    expect(ip[9]).toBe(1);
    expect(ip.subarray(12, 16)).toEqual(ipv4('172.18.0.12'));
    expect(ip.subarray(16, 20)).toEqual(ipv4('172.18.0.11'));
    expect(referenceChecksum(ip.subarray(0, 20))).toBe(0);
    const icmp = ip.subarray(20);
    expect(icmp[0]).toBe(3);
    expect(icmp[1]).toBe(4);
    expect(icmp.readUInt16BE(4)).toBe(0);
    expect(icmp.readUInt16BE(6)).toBe(1450);
    expect(referenceChecksum(icmp)).toBe(0);
    expect(icmp.subarray(8)).toEqual(frame.subarray(14, 14 + 548));
  });

  it('quotes a short packet whole', () => {
    const frame = ipv4Frame(100, { df: true });
    const n = buildFragmentationNeeded(frame, 0, frame.length, 60 + 20, out, 0);
    expect(n).toBe(14 + 28 + 100);
    expect(out.subarray(14 + 28, n)).toEqual(frame.subarray(14));
    expect(referenceChecksum(out.subarray(34, n))).toBe(0);
  });

  it('keeps a VLAN tag and reports 4 bytes less', () => {
    const frame = ipv4Frame(1500, { df: true, vlan: 0x2064 });
    const n = buildFragmentationNeeded(frame, 0, frame.length, 1450, out, 0);
    expect(n).toBe(18 + 576);
    expectAnswerEthernet(out, frame, 18);
    expect(out.readUInt16BE(18 + 20 + 6)).toBe(1446);
    expect(referenceChecksum(out.subarray(18, 38))).toBe(0);
    expect(referenceChecksum(out.subarray(38, n))).toBe(0);
  });

  it('answers an ICMP echo request but never an ICMP error, a later fragment, or group and invalid addresses', () => {
    const icmp = (type: number) => Buffer.concat([Buffer.from([type, 0, 0, 0]), randomBytes(1476)]);
    expect(buildFragmentationNeeded(...args(ipv4Frame(1500, { df: true, protocol: 1, payload: icmp(8) })))).toBeGreaterThan(0);
    for (const type of [3, 4, 5, 11, 12]) {
      expect(buildFragmentationNeeded(...args(ipv4Frame(1500, { df: true, protocol: 1, payload: icmp(type) })))).toBe(0);
    }
    expect(buildFragmentationNeeded(...args(ipv4Frame(1500, { df: true, offset: 185 })))).toBe(0);
    expect(buildFragmentationNeeded(...args(ipv4Frame(1500, { df: true, dst: '224.0.0.1' })))).toBe(0);
    expect(buildFragmentationNeeded(...args(ipv4Frame(1500, { df: true, dst: '255.255.255.255' })))).toBe(0);
    expect(buildFragmentationNeeded(...args(ipv4Frame(1500, { df: true, src: '0.0.0.0' })))).toBe(0);
    expect(buildFragmentationNeeded(...args(ipv4Frame(1500, { df: true, src: '127.0.0.1' })))).toBe(0);
    expect(buildFragmentationNeeded(...args(ipv4Frame(1500, { df: true, dstMac: 'ff:ff:ff:ff:ff:ff' })))).toBe(0);
    expect(buildFragmentationNeeded(...args(ipv6Frame(1500)))).toBe(0);
    const frame = ipv4Frame(1500, { df: true });
    expect(buildFragmentationNeeded(frame, 0, frame.length, 60, out, 0)).toBe(0); // below 68
  });

  function args(frame: Buffer): [Buffer, number, number, number, Buffer, number] {
    return [frame, 0, frame.length, 1450, out, 0];
  }
});

describe('ICMPv6 "packet too big"', () => {
  const out = Buffer.alloc(2048);

  /** The ICMPv6 checksum computed from scratch: pseudo-header, then the message. */
  function icmpv6Checksum(ip: Buffer): number {
    const length = ip.readUInt16BE(4);
    const pseudo = Buffer.alloc(40);
    ip.copy(pseudo, 0, 8, 40);
    pseudo.writeUInt32BE(length, 32);
    pseudo[39] = 58;
    return referenceChecksum(Buffer.concat([pseudo, ip.subarray(40, 40 + length)]));
  }

  it('goes from the destination back to the sender with the MTU, a pseudo-header checksum, and 1232 quoted bytes', () => {
    const frame = ipv6Frame(1500);
    const slab = inSlab(frame, 100);
    const n = buildPacketTooBig(slab, 100, frame.length, 1450, out, 0);
    expect(n).toBe(14 + 1280);
    expectAnswerEthernet(out, frame, 14);
    const ip = out.subarray(14, n);
    expect(ip.readUInt32BE(0)).toBe(0x60000000);
    expect(ip.readUInt16BE(4)).toBe(1240);
    expect(ip[6]).toBe(58);
    expect(ip[7]).toBe(64);
    expect(ip.subarray(8, 24)).toEqual(ipv6('fd18::12'));
    expect(ip.subarray(24, 40)).toEqual(ipv6('fd18::11'));
    const icmp = ip.subarray(40);
    expect(icmp[0]).toBe(2);
    expect(icmp[1]).toBe(0);
    expect(icmp.readUInt32BE(4)).toBe(1450);
    expect(icmpv6Checksum(ip)).toBe(0);
    // The module's own pseudo-header sum agrees.
    expect(finishChecksum(sumWords(ip, 40, 1240, ipv6PseudoHeaderSum(ip, 0, 1240, 58)))).toBe(0);
    expect(icmp.subarray(8)).toEqual(frame.subarray(14, 14 + 1232));
  });

  it('never reports less than 1280, keeps a VLAN tag, quotes a short packet whole', () => {
    const frame = ipv6Frame(1400, { vlan: 7 });
    const n = buildPacketTooBig(frame, 0, frame.length, 1200, out, 0);
    expect(out.readUInt32BE(18 + 40 + 4)).toBe(1280);
    expect(n).toBe(18 + 1280);
    expect(icmpv6Checksum(out.subarray(18, n))).toBe(0);
    const small = ipv6Frame(300);
    const m = buildPacketTooBig(small, 0, small.length, 1450, out, 0);
    expect(m).toBe(14 + 48 + 300);
    expect(out.subarray(14 + 48, m)).toEqual(small.subarray(14));
    expect(icmpv6Checksum(out.subarray(14, m))).toBe(0);
  });

  it('answers an echo request but not ICMPv6 errors (also behind extension headers), nor from ::, ::1 or multicast', () => {
    const icmp = (type: number) => Buffer.concat([Buffer.from([type, 0, 0, 0]), randomBytes(1456)]);
    expect(buildPacketTooBig(...args(ipv6Frame(1500, { nextHeader: 58, payload: icmp(128) })))).toBeGreaterThan(0);
    for (const type of [1, 2, 3, 4]) expect(buildPacketTooBig(...args(ipv6Frame(1500, { nextHeader: 58, payload: icmp(type) })))).toBe(0);
    // Hop-by-hop options (8 bytes, next header ICMPv6), then a "packet too big".
    const hopByHop = Buffer.concat([Buffer.from([58, 0, 1, 4, 0, 0, 0, 0]), icmp(2).subarray(0, 1452)]);
    expect(buildPacketTooBig(...args(ipv6Frame(1500, { nextHeader: 0, payload: hopByHop })))).toBe(0);
    expect(buildPacketTooBig(...args(ipv6Frame(1500, { src: '::' })))).toBe(0);
    expect(buildPacketTooBig(...args(ipv6Frame(1500, { src: '::1' })))).toBe(0);
    expect(buildPacketTooBig(...args(ipv6Frame(1500, { src: 'ff02::1' })))).toBe(0);
    expect(buildPacketTooBig(...args(ipv6Frame(1500, { dstMac: '33:33:00:00:00:01' })))).toBe(0);
    expect(buildPacketTooBig(...args(ipv4Frame(1500)))).toBe(0);
  });

  function args(frame: Buffer): [Buffer, number, number, number, Buffer, number] {
    return [frame, 0, frame.length, 1450, out, 0];
  }
});

describe('what to do with a frame too big for the path', () => {
  const action = (frame: Buffer, mtu = 1450) => oversizeAction(frame, 0, frame.length, mtu);

  it('answers IPv4 with DF and IPv6, fragments IPv4 without DF, drops the rest', () => {
    expect(action(ipv4Frame(1500, { df: true }))).toBe(TOO_BIG_ICMP4);
    expect(action(ipv4Frame(1500, { df: true, vlan: 5 }))).toBe(TOO_BIG_ICMP4);
    expect(action(ipv4Frame(1500))).toBe(TOO_BIG_FRAGMENT);
    expect(action(ipv4Frame(1500, { vlan: 5 }))).toBe(TOO_BIG_FRAGMENT);
    expect(action(ipv6Frame(1500))).toBe(TOO_BIG_ICMP6);
    expect(action(ethernet(randomBytes(1500), 0x0806))).toBe(TOO_BIG_DROP); // ARP-sized nonsense
    expect(action(ethernet(randomBytes(1500), 0x88cc))).toBe(TOO_BIG_DROP);
    const qinq = ethernet(ipv4Packet({ df: true, payload: randomBytes(1480) }), 0x0800, { vlan: 5 });
    qinq.writeUInt16BE(0x88a8, 12);
    expect(action(qinq)).toBe(TOO_BIG_DROP);
  });

  it('drops what cannot be answered or split', () => {
    expect(action(ipv4Frame(1500, { df: true, offset: 185 }))).toBe(TOO_BIG_DROP); // later fragment with DF
    expect(action(ipv4Frame(1500, { df: true, dst: '224.0.0.5' }))).toBe(TOO_BIG_DROP);
    expect(action(ipv4Frame(1500), 24)).toBe(TOO_BIG_DROP); // no room for 8 bytes of data
    const bad = ipv4Frame(1500);
    bad[14] = 0x43; // header length 12
    expect(action(bad)).toBe(TOO_BIG_DROP);
  });

  it('carries IPv6 within 1280 bytes when the path is below the IPv6 minimum, and answers bigger IPv6 with 1280', () => {
    expect(action(ipv6Frame(1280), 1200)).toBe(TOO_BIG_CARRY);
    expect(action(ipv6Frame(1400), 1200)).toBe(TOO_BIG_ICMP6);
  });
});

// ------------------------------------------------------------------ fragmentation

interface Fragment {
  ethernet: Buffer;
  header: Buffer;
  data: Buffer;
  offset: number;
  more: boolean;
}

function parseFragments(out: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number, l3 = 14): Fragment[] {
  const fragments: Fragment[] = [];
  for (let i = 0; i < count; i++) {
    const frame = out.subarray(offsets[i], offsets[i] + lengths[i]);
    const ihl = (frame[l3] & 0x0f) * 4;
    const total = frame.readUInt16BE(l3 + 2);
    expect(total).toBe(lengths[i] - l3);
    expect(referenceChecksum(frame.subarray(l3, l3 + ihl))).toBe(0);
    const flags = frame.readUInt16BE(l3 + 6);
    expect(flags & 0x4000).toBe(0);
    fragments.push({
      ethernet: frame.subarray(0, l3),
      header: frame.subarray(l3, l3 + ihl),
      data: frame.subarray(l3 + ihl),
      offset: (flags & 0x1fff) * 8,
      more: (flags & 0x2000) !== 0,
    });
  }
  return fragments;
}

/** Puts fragments back together as a receiving host would; returns the data. */
function reassemble(fragments: Fragment[]): Buffer {
  const sorted = [...fragments].sort((a, b) => a.offset - b.offset);
  let expected = sorted[0].offset;
  for (const f of sorted) {
    expect(f.offset).toBe(expected);
    expected += f.data.length;
  }
  for (const f of sorted.slice(0, -1)) {
    expect(f.more).toBe(true);
    expect(f.data.length % 8).toBe(0);
  }
  return Buffer.concat(sorted.map((f) => f.data));
}

describe('inner IPv4 fragmentation', () => {
  const HEADROOM = 64;

  function split(frame: Buffer, mtu: number, room = 64 * 1024, max = 64) {
    const out = Buffer.alloc(room + 1000, 0xaa);
    const offsets = new Uint32Array(max);
    const lengths = new Uint32Array(max);
    const slab = inSlab(frame, 128);
    const count = fragmentIpv4(slab, 128, frame.length, mtu, out, 500, 500 + room, HEADROOM, offsets, lengths);
    return { out, offsets, lengths, count };
  }

  it('splits a 1500-byte packet for a 1450 path into two that reassemble to the original', () => {
    const frame = ipv4Frame(1500, { id: 0xbeef, ttl: 33 });
    const { out, offsets, lengths, count } = split(frame, 1450);
    expect(count).toBe(2);
    const fragments = parseFragments(out, offsets, lengths, count);
    for (let i = 0; i < count; i++) {
      expect(lengths[i] - 14).toBeLessThanOrEqual(1450);
      expect(offsets[i]).toBeGreaterThanOrEqual(500 + HEADROOM);
      if (i > 0) expect(offsets[i]).toBeGreaterThanOrEqual(offsets[i - 1] + lengths[i - 1] + HEADROOM);
    }
    expect(fragments[0].data.length).toBe(1424);
    expect(fragments[0].more).toBe(true);
    expect(fragments[1].more).toBe(false);
    for (const f of fragments) {
      expect(f.ethernet).toEqual(frame.subarray(0, 14));
      expect(f.header.readUInt16BE(4)).toBe(0xbeef);
      expect(f.header[8]).toBe(33);
      expect(f.header.subarray(9, 10)).toEqual(frame.subarray(23, 24));
      expect(f.header.subarray(12, 20)).toEqual(frame.subarray(26, 34));
    }
    expect(reassemble(fragments)).toEqual(frame.subarray(34));
  });

  it('splits a 9000-byte packet into seven, and a VLAN-tagged one keeps its tag and 4 bytes less', () => {
    const jumbo = ipv4Frame(9000);
    const a = split(jumbo, 1450);
    expect(a.count).toBe(7);
    expect(reassemble(parseFragments(a.out, a.offsets, a.lengths, a.count))).toEqual(jumbo.subarray(34));

    const tagged = ipv4Frame(1500, { vlan: 0x0123 });
    const b = split(tagged, 1450);
    const fragments = parseFragments(b.out, b.offsets, b.lengths, b.count, 18);
    for (let i = 0; i < b.count; i++) expect(b.lengths[i] - 18).toBeLessThanOrEqual(1446);
    for (const f of fragments) expect(f.ethernet).toEqual(tagged.subarray(0, 18));
    expect(reassemble(fragments)).toEqual(tagged.subarray(38));
  });

  it('splits a fragment further: offsets continue and the last keeps MF', () => {
    const frame = ipv4Frame(1500, { mf: true, offset: 100 });
    const { out, offsets, lengths, count } = split(frame, 700);
    const fragments = parseFragments(out, offsets, lengths, count);
    expect(fragments[0].offset).toBe(800);
    expect(fragments.every((f) => f.more)).toBe(true);
    expect(reassemble(fragments)).toEqual(frame.subarray(34));
  });

  it('keeps options with the copy flag in every fragment and turns the others into NOPs after the first', () => {
    const routerAlert = Buffer.from([0x94, 0x04, 0x00, 0x00]); // copied
    const recordRoute = Buffer.from([0x07, 0x07, 0x04, 0, 0, 0, 0, 0x00]); // not copied; then end of list
    const options = Buffer.concat([routerAlert, recordRoute]);
    const frame = ipv4Frame(1500, { options });
    const { out, offsets, lengths, count } = split(frame, 1000);
    const fragments = parseFragments(out, offsets, lengths, count);
    expect(fragments[0].header.subarray(20)).toEqual(options);
    for (const f of fragments.slice(1)) {
      expect(f.header.length).toBe(32);
      expect([...f.header.subarray(20)]).toEqual([0x94, 0x04, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]);
    }
    expect(reassemble(fragments)).toEqual(frame.subarray(14 + 32));
  });

  it('refuses DF, malformed options, too little room and too many fragments', () => {
    expect(split(ipv4Frame(1500, { df: true }), 1450).count).toBe(0);
    const badOptions = ipv4Frame(1500, { options: Buffer.from([0x07, 0x09, 0x04, 0]) });
    expect(split(badOptions, 1450).count).toBe(0);
    expect(split(ipv4Frame(1500), 1450, 1000).count).toBe(0);
    expect(split(ipv4Frame(9000), 576, 64 * 1024, 8).count).toBe(0);
    expect(split(ethernet(randomBytes(1500), 0x0806), 1450).count).toBe(0);
  });
});

describe('outer DF (inherit) and the truncation check', () => {
  it('wants outer DF for IPv4 with DF and for IPv6, not otherwise', () => {
    const df = (frame: Buffer) => wantsOuterDf(frame, 0, frame.length);
    expect(df(ipv4Frame(100, { df: true }))).toBe(true);
    expect(df(ipv4Frame(100, { df: true, vlan: 3 }))).toBe(true);
    expect(df(ipv4Frame(100))).toBe(false);
    expect(df(ipv6Frame(100))).toBe(true);
    expect(df(ethernet(randomBytes(46), 0x0806))).toBe(false);
  });

  it('finds inner packets longer than their frame, and accepts padding and non-IP frames', () => {
    const truncated = (frame: Buffer, length = frame.length) => isTruncated(frame, 0, length);
    const v4 = ipv4Frame(1400);
    expect(truncated(v4)).toBe(false);
    expect(truncated(v4, v4.length - 1)).toBe(true);
    expect(truncated(v4, 14 + 10)).toBe(true);
    const padded = Buffer.concat([ipv4Frame(28), Buffer.alloc(18)]);
    expect(truncated(padded)).toBe(false);
    const v6 = ipv6Frame(1400, { vlan: 9 });
    expect(truncated(v6)).toBe(false);
    expect(truncated(v6, v6.length - 100)).toBe(true);
    expect(truncated(ethernet(randomBytes(46), 0x0806))).toBe(false);
    // IPv4 ethertype but no IPv4 header (version 0): not judged here.
    expect(truncated(ethernet(Buffer.alloc(46), 0x0800))).toBe(false);
  });
});

// ------------------------------------------------------------------ the engine's oversize branch

const EMSGSIZE = constants.errno.EMSGSIZE;
const PEER_1 = '10.0.1.42';
const PEER_2 = '10.0.1.43';

/** An underlay socket that records what is sent, and can refuse datagrams over a size. */
class Socket implements DatagramPort {
  readonly sent: { to: string; bytes: Buffer; dontFragment?: number }[] = [];
  readonly inbox: { bytes: Buffer; from: string }[] = [];
  /** Datagrams longer than this fail with EMSGSIZE (as with DF set and a smaller path MTU). */
  refuseOver = Infinity;
  /** What pathMtu() reports: the kernel's idea of the outer path MTU. */
  kernelMtu = 1500;
  recvBatch(slab: Slab): number {
    let n = 0;
    while (n < slab.slots && this.inbox.length > 0) {
      const { bytes, from } = this.inbox.shift() as { bytes: Buffer; from: string };
      bytes.copy(slab.bytes, n * slab.slotSize + slab.headroom);
      addressRecord(from, 4789).copy(slab.records, n * ADDR_RECORD_LEN);
      slab.lengths[n++] = bytes.length;
    }
    return n;
  }
  sendBatch(queue: SendQueue): SendOutcome {
    for (let i = 0; i < queue.count; i++) {
      if (queue.lengths[i] > this.refuseOver) {
        queue.results[i] = EMSGSIZE;
        continue;
      }
      const to = recordAddress(queue.records, i * ADDR_RECORD_LEN);
      const bytes = Buffer.from(queue.bytes.subarray(queue.offsets[i], queue.offsets[i] + queue.lengths[i]));
      this.sent.push({ to, bytes, dontFragment: queue.perDatagramDf ? queue.dontFragment[i] : undefined });
      queue.results[i] = 0;
    }
    return SEND_DONE;
  }
  pathMtu(): number {
    return this.kernelMtu;
  }
}

function makeEngine(options: { dontFragment?: boolean | 'inherit'; peers?: string[] } = {}) {
  const clock = new ManualClock();
  const socket = new Socket();
  const tap = new FakeTap();
  const remotes = new RemoteTable(4789);
  const pathMtus: [string, number][] = [];
  const engine = new Engine({
    socket,
    remotes,
    clock,
    batchSize: 16,
    maxFrameSize: 9018,
    learnRemotes: false,
    dontFragment: options.dontFragment,
    onPathMtu: (remote, mtu) => pathMtus.push([remote, mtu]),
  });
  const network = new Network(100, new Fdb({ clock }), tap);
  network.overlayMtu = 1450;
  for (const peer of options.peers ?? [PEER_1]) network.addPeer(remotes.add(peer).id);
  engine.addNetwork(network);
  // Container B (the destination) lives behind the first peer.
  const b = parseMac(MAC_B)!;
  network.fdb.learn(b.high, b.low, remotes.add((options.peers ?? [PEER_1])[0]).id);
  const send = (...frames: Buffer[]) => {
    tap.fromBridge.push(...frames);
    engine.drainTap(network);
  };
  return { engine, network, socket, tap, remotes, send, pathMtus };
}

describe('the engine with frames too big for the path', () => {
  it('carries frames that fit as they are, one datagram each', () => {
    const { socket, tap, network, send } = makeEngine();
    const frame = ipv4Frame(1450, { df: true });
    send(frame);
    expect(socket.sent).toHaveLength(1);
    expect(socket.sent[0].bytes.subarray(8)).toEqual(frame);
    expect(socket.sent[0].dontFragment).toBeUndefined();
    expect(tap.toBridge).toHaveLength(0);
    expect(network.counters.icmpTooBig + network.counters.drops.oversize).toBe(0);
  });

  it('answers IPv4 with DF through the TAP with "fragmentation needed", mtu 1450, and sends nothing', () => {
    const { socket, tap, network, send } = makeEngine();
    send(ipv4Frame(1500, { df: true }));
    expect(socket.sent).toHaveLength(0);
    expect(tap.toBridge).toHaveLength(1);
    const reply = tap.toBridge[0];
    expect(reply.subarray(0, 6)).toEqual(mac(MAC_A));
    expect(reply[14 + 20]).toBe(3);
    expect(reply[14 + 21]).toBe(4);
    expect(reply.readUInt16BE(14 + 26)).toBe(1450);
    expect(network.counters.icmpTooBig).toBe(1);
    expect(network.counters.txFrames).toBe(0);
  });

  it('answers IPv6 with "packet too big"', () => {
    const { socket, tap, network, send } = makeEngine();
    send(ipv6Frame(1500));
    expect(socket.sent).toHaveLength(0);
    expect(tap.toBridge[0][14 + 40]).toBe(2);
    expect(tap.toBridge[0].readUInt32BE(14 + 44)).toBe(1450);
    expect(network.counters.icmpTooBig).toBe(1);
  });

  it('fragments IPv4 without DF, each fragment its own datagram, unicast or flooded', () => {
    const { socket, network, send } = makeEngine({ peers: [PEER_1, PEER_2] });
    const frame = ipv4Frame(3000);
    const small = ipv4Frame(100);
    send(frame, small, frame);
    // Two frames of 3 fragments each, and the small one in between, in order.
    expect(socket.sent.map((d) => d.to)).toEqual(Array(7).fill(PEER_1));
    const datagrams = socket.sent.map((d) => d.bytes);
    for (const d of datagrams) expect(d.length - 8 - 14).toBeLessThanOrEqual(1450);
    const first = datagrams.slice(0, 3);
    const offsets = new Uint32Array(first.map((_, i) => i * 4096 + 8));
    const lengths = new Uint32Array(first.map((d) => d.length - 8));
    const joined = Buffer.alloc(3 * 4096);
    first.forEach((d, i) => d.copy(joined, i * 4096));
    expect(reassemble(parseFragments(joined, offsets, lengths, 3))).toEqual(frame.subarray(34));
    expect(datagrams[3].subarray(8)).toEqual(small);
    expect(network.counters.fragmentedFrames).toBe(2);
    expect(network.counters.txFrames).toBe(7);

    socket.sent.length = 0;
    send(ipv4Frame(2000, { dstMac: 'ff:ff:ff:ff:ff:ff' }));
    expect(socket.sent.map((d) => d.to).sort()).toEqual([PEER_1, PEER_1, PEER_2, PEER_2]);
  });

  it('drops and counts what cannot be answered or split (ARP-sized junk, a later fragment with DF)', () => {
    const { socket, tap, network, send } = makeEngine();
    send(ethernet(randomBytes(1500), 0x0806), ipv4Frame(1500, { df: true, offset: 185 }));
    expect(socket.sent).toHaveLength(0);
    expect(tap.toBridge).toHaveLength(0);
    expect(network.counters.drops.oversize).toBe(2);
  });

  it('carries small IPv6 on a path below 1280 with outer DF clear, but not with --df set', () => {
    const unset = makeEngine({ dontFragment: 'inherit' });
    unset.network.overlayMtu = 1200;
    unset.send(ipv6Frame(1280));
    expect(unset.socket.sent).toHaveLength(1);
    expect(unset.socket.sent[0].dontFragment).toBe(0);
    const set = makeEngine({ dontFragment: true });
    set.network.overlayMtu = 1200;
    set.send(ipv6Frame(1280));
    expect(set.socket.sent).toHaveLength(0);
    expect(set.network.counters.drops.oversize).toBe(1);
  });

  it('with --df inherit, gives each datagram the inner DF bit (IPv6: set)', () => {
    const { socket, send } = makeEngine({ dontFragment: 'inherit' });
    send(ipv4Frame(1000, { df: true }), ipv4Frame(1000), ipv6Frame(1000), ethernet(randomBytes(46), 0x0806), ipv4Frame(3000));
    expect(socket.sent.map((d) => d.dontFragment)).toEqual([1, 0, 1, 0, 0, 0, 0]);
  });

  it('lowers a remote\'s MTU when a send fails with EMSGSIZE, answers with it, and raises it when the kernel does', () => {
    const { engine, socket, tap, network, remotes, send, pathMtus } = makeEngine({ dontFragment: true });
    // The kernel learned a 1400-byte path: datagrams over 1400 - 28 fail.
    socket.refuseOver = 1400 - 28;
    socket.kernelMtu = 1400;
    send(ipv4Frame(1450, { df: true }), ipv4Frame(1450, { df: true }));
    expect(network.counters.drops.path_mtu).toBe(2);
    expect(remotes.add(PEER_1).mtu).toBe(1350);
    expect(pathMtus).toEqual([[PEER_1, 1350]]);
    send(ipv4Frame(1450, { df: true }));
    expect(tap.toBridge).toHaveLength(1);
    expect(tap.toBridge[0].readUInt16BE(14 + 26)).toBe(1350);
    // Frames that fit the smaller path still go.
    send(ipv4Frame(1350, { df: true }));
    expect(socket.sent).toHaveLength(1);
    // A flood takes the smallest MTU of the peers.
    send(ipv4Frame(1400, { dstMac: 'ff:ff:ff:ff:ff:ff' }));
    expect(socket.sent.slice(1).every((d) => d.bytes.length - 22 <= 1350)).toBe(true);
    expect(network.counters.fragmentedFrames).toBe(1);

    // Ten minutes on the kernel forgets; housekeeping notices and raises it again.
    socket.kernelMtu = 1500;
    socket.refuseOver = Infinity;
    engine.housekeep();
    expect(remotes.add(PEER_1).mtu).toBe(1450);
    socket.sent.length = 0;
    send(ipv4Frame(1450, { df: true }));
    expect(socket.sent).toHaveLength(1);
    expect(remotes.add(PEER_1).mtu).not.toBe(NO_PATH_LIMIT);
  });

  it('drops received frames whose inner packet is cut short, and delivers whole ones', () => {
    const { engine, socket, tap, network } = makeEngine();
    const header = Buffer.from([0x08, 0, 0, 0, 0, 0, 100, 0]);
    const whole = ipv4Frame(1400);
    const cut = whole.subarray(0, 1000);
    socket.inbox.push({ bytes: Buffer.concat([header, cut]), from: PEER_1 }, { bytes: Buffer.concat([header, whole]), from: PEER_1 });
    engine.drainSocket();
    expect(network.counters.drops.truncated).toBe(1);
    expect(tap.toBridge).toEqual([whole]);
  });
});
