// Three VTEPs over in-memory devices: the engine learns, floods and forwards
// as a learning switch split across hosts should.

import { beforeEach, describe, expect, it } from 'vitest';
import { parseMac } from '../../src/core/ethernet';
import { ethernetFrame, FakeUnderlay, SimVtep } from '../helpers/sim';

const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';
const MAC_C = '02:00:00:00:00:0c';
const A = '10.0.1.41';
const B = '10.0.1.42';
const C = 'fd00:1::43';

function deliverAll(vteps: SimVtep[]): void {
  for (const v of vteps) v.receive();
}

describe('three VTEPs over an in-memory underlay', () => {
  let underlay: FakeUnderlay;
  let a: SimVtep;
  let b: SimVtep;
  let c: SimVtep;

  beforeEach(() => {
    underlay = new FakeUnderlay();
    a = new SimVtep(A, underlay, 100, [B, C]);
    b = new SimVtep(B, underlay, 100, [A, C]);
    c = new SimVtep(C, underlay, 100, [A, B]);
  });

  it('floods a broadcast to every peer once, and each peer delivers it to its bridge', () => {
    const arp = ethernetFrame(BROADCAST, MAC_A, 'who-has', 0x0806);
    a.sendFromBridge(arp);
    expect(underlay.log.map((d) => d.to).sort()).toEqual([B, C].sort());
    deliverAll([a, b, c]);
    expect(b.tap.toBridge).toEqual([arp]);
    expect(c.tap.toBridge).toEqual([arp]);
    expect(a.network.counters.floodedFrames).toBe(1);
  });

  it('never sends a frame from the overlay back into the overlay', () => {
    a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A));
    const carried = underlay.log.length;
    deliverAll([a, b, c]);
    expect(underlay.log.length).toBe(carried);
  });

  it('learns the sender and answers with unicast to that remote only', () => {
    a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A));
    deliverAll([a, b, c]);
    const macA = parseMac(MAC_A)!;
    expect(b.network.fdb.lookup(macA.high, macA.low)).toBe(b.remotes.add(A).id);

    underlay.log.length = 0;
    b.sendFromBridge(ethernetFrame(MAC_A, MAC_B, 'reply'));
    expect(underlay.log.map((d) => d.to)).toEqual([A]);
    deliverAll([a, b, c]);
    expect(a.tap.toBridge).toHaveLength(1);
    expect(c.tap.toBridge).toHaveLength(1); // only the first broadcast

    // Now A knows B too: unicast back goes to B alone.
    underlay.log.length = 0;
    a.sendFromBridge(ethernetFrame(MAC_B, MAC_A, 'again'));
    expect(underlay.log.map((d) => d.to)).toEqual([B]);
  });

  it('floods unknown unicast and multicast', () => {
    a.sendFromBridge(ethernetFrame(MAC_C, MAC_A)); // C's MAC not learned yet
    a.sendFromBridge(ethernetFrame('33:33:00:00:00:01', MAC_A)); // IPv6 all-nodes
    expect(underlay.log).toHaveLength(4);
    expect(a.network.counters.floodedFrames).toBe(2);
  });

  it('puts the VNI and the I flag on the wire', () => {
    a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A));
    const header = underlay.log[0].bytes.subarray(0, 8);
    expect([...header]).toEqual([0x08, 0, 0, 0, 0, 0, 100, 0]);
  });

  it('moves a MAC that shows up behind another remote', () => {
    a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A));
    deliverAll([a, b, c]);
    // The container with MAC_A moved to host C.
    c.sendFromBridge(ethernetFrame(BROADCAST, MAC_A));
    deliverAll([a, b, c]);
    const macA = parseMac(MAC_A)!;
    expect(b.network.fdb.lookup(macA.high, macA.low)).toBe(b.remotes.add(C).id);
    expect(b.network.counters.fdbMoved).toBe(1);
  });

  it('forgets learned entries after ageing and floods again', () => {
    a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A));
    deliverAll([a, b, c]);
    b.clock.advance(301_000);
    underlay.log.length = 0;
    b.sendFromBridge(ethernetFrame(MAC_A, MAC_B));
    expect(underlay.log.map((d) => d.to).sort()).toEqual([A, C].sort());
  });

  it('drops and counts bad datagrams, and keeps forwarding', () => {
    const good = underlay.log;
    b.socket.inject(Buffer.from([0x08, 0, 0, 0, 0, 0, 99, 0, ...ethernetFrame(BROADCAST, MAC_A)]), A); // wrong VNI
    b.socket.inject(Buffer.from([0x00, 0, 0, 0, 0, 0, 100, 0, ...ethernetFrame(BROADCAST, MAC_A)]), A); // no I flag
    b.socket.inject(Buffer.from([0x08, 0, 0]), A); // too short
    b.socket.inject(Buffer.from([0x08, 0, 0, 0, 0, 0, 100, 0, 1, 2, 3]), A); // runt inner frame
    b.socket.inject(Buffer.from([0x08, 0, 0, 0, 0, 0, 100, 0, ...ethernetFrame(BROADCAST, MAC_A)]), '10.9.9.9'); // not a peer
    b.socket.inject(Buffer.from([0x08, 0, 0, 0, 0, 0, 100, 0, ...ethernetFrame(BROADCAST, BROADCAST)]), A); // group source MAC
    b.receive();
    expect(b.engine.counters.drops.unknown_vni).toBe(1);
    expect(b.engine.counters.drops.bad_header).toBe(2);
    expect(b.network.counters.drops.runt).toBe(1);
    expect(b.network.counters.drops.unknown_sender).toBe(1);
    expect(b.network.counters.drops.bad_frame).toBe(1);
    expect(b.tap.toBridge).toHaveLength(0);
    expect(good).toHaveLength(0);

    a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A));
    b.receive();
    expect(b.tap.toBridge).toHaveLength(1);
  });

  it('accepts any sender and learns it as a remote with learn-remotes', () => {
    const open = new SimVtep('10.0.1.50', underlay, 100, [A], undefined, { learnRemotes: true });
    open.socket.inject(Buffer.from([0x08, 0, 0, 0, 0, 0, 100, 0, ...ethernetFrame(BROADCAST, MAC_C)]), '10.0.1.77');
    open.receive();
    expect(open.tap.toBridge).toHaveLength(1);
    const macC = parseMac(MAC_C)!;
    const remoteId = open.network.fdb.lookup(macC.high, macC.low);
    expect(open.remotes.get(remoteId)?.address).toBe('10.0.1.77');
    expect(open.remotes.get(remoteId)?.learned).toBe(true);
  });

  it('splits a run of datagrams handed over as one (UDP GRO) into its datagrams', () => {
    const gro = new SimVtep('10.0.1.60', underlay, 100, [A], undefined, { socketGro: true });
    const vxlan = (frame: Buffer) => Buffer.concat([Buffer.from([0x08, 0, 0, 0, 0, 0, 100, 0]), frame]);
    const frames = [1, 2, 3].map((i) => ethernetFrame(MAC_B, MAC_A, `frame ${i}`));
    gro.socket.injectRun(frames.map(vxlan), A);
    gro.receive();
    expect(gro.tap.toBridge).toEqual(frames);
    expect(gro.engine.counters.rxDatagrams).toBe(3);
    expect(gro.network.counters.rxFrames).toBe(3);
  });

  it('drops frames from the bridge that are shorter than an Ethernet header', () => {
    a.sendFromBridge(Buffer.alloc(10));
    expect(a.network.counters.drops.runt).toBe(1);
    expect(underlay.log).toHaveLength(0);
  });
});
