// Hardening in the core: the flood rate limit (the token bucket with a manual
// clock, and the engine consulting it on the flood branch only, on the plain
// path and on the TSO path, and its configuration), the failure episodes the
// daemon's watch logs, and datagrams larger than any frame.

import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config';
import { ManualClock } from '../../src/core/clock';
import { Engine } from '../../src/core/engine';
import { EPISODE_ENDED, EPISODE_NONE, EPISODE_STARTED, FailureEpisodes } from '../../src/core/failures';
import { Fdb } from '../../src/core/fdb';
import { Network } from '../../src/core/network';
import { GSO_TCPV4, VNET_HDR_LEN } from '../../src/core/offload';
import { TokenBucket } from '../../src/core/rate-limit';
import { RemoteTable } from '../../src/core/remotes';
import { pureSegmenter } from '../../src/core/pure-segmenter';
import { ethernetFrame, FakeTap, FakeUnderlay, SimVtep, VXLAN_PORT } from '../helpers/sim';

const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';
const A = '10.0.1.41';
const B = '10.0.1.42';
const C = '10.0.1.43';

describe('TokenBucket', () => {
  it('lets a burst through at once, then the rate', () => {
    const clock = new ManualClock(1_000);
    const bucket = new TokenBucket(100, 10, clock);
    let passed = 0;
    for (let i = 0; i < 50; i++) if (bucket.take()) passed++;
    expect(passed).toBe(10);
    clock.advance(100); // 10 tokens at 100/s
    passed = 0;
    for (let i = 0; i < 50; i++) if (bucket.take()) passed++;
    expect(passed).toBe(10);
    clock.advance(5);
    expect(bucket.take()).toBe(false);
    clock.advance(5);
    expect(bucket.take()).toBe(true);
  });

  it('never saves more than the burst, however long it was quiet', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(1_000, 3, clock);
    clock.advance(3_600_000);
    let passed = 0;
    for (let i = 0; i < 10; i++) if (bucket.take()) passed++;
    expect(passed).toBe(3);
  });

  it('lets an event dearer than the burst pass, then waits until the debt is paid', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(10, 5, clock);
    expect(bucket.take(40)).toBe(true); // 5 - 40 = -35 tokens
    clock.advance(3_000); // +30: still below 1
    expect(bucket.take()).toBe(false);
    clock.advance(1_000); // +10: 5
    expect(bucket.take()).toBe(true);
  });

  it('changes rate and burst in place, and refuses nonsense', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(10, 10, clock);
    bucket.configure(1_000, 2);
    expect(bucket.rate).toBe(1_000);
    expect(bucket.capacity).toBe(2);
    expect([bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, false]);
    expect(() => bucket.configure(0, 1)).toThrow(RangeError);
    expect(() => new TokenBucket(10, 0, clock)).toThrow(RangeError);
  });
});

describe('the engine floods at most at the VNI flood rate', () => {
  function hosts(rate: number, burst: number): { underlay: FakeUnderlay; a: SimVtep; b: SimVtep; c: SimVtep } {
    const underlay = new FakeUnderlay();
    const a = new SimVtep(A, underlay, 100, [B, C]);
    const b = new SimVtep(B, underlay, 100, [A, C]);
    const c = new SimVtep(C, underlay, 100, [A, B]);
    a.network.floodLimiter = new TokenBucket(rate, burst, a.clock);
    return { underlay, a, b, c };
  }

  it('drops a broadcast storm beyond the burst and counts it, and lets the rate through later', () => {
    const { underlay, a } = hosts(10, 5);
    for (let i = 0; i < 20; i++) a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A, `storm ${i}`, 0x0806));
    const counters = a.network.counters;
    expect(counters.floodedFrames).toBe(5);
    expect(counters.drops.flood_limited).toBe(15);
    expect(counters.txFrames).toBe(5); // what was not flooded was not sent
    expect(underlay.log.length).toBe(10); // 5 frames to 2 peers
    a.clock.advance(300); // 3 frames' worth at 10/s
    for (let i = 0; i < 20; i++) a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A, `later ${i}`, 0x0806));
    expect(counters.floodedFrames).toBe(8);
    expect(counters.drops.flood_limited).toBe(32);
    a.clock.advance(60_000); // a long quiet spell saves the burst, no more
    for (let i = 0; i < 20; i++) a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A, `much later ${i}`, 0x0806));
    expect(counters.floodedFrames).toBe(13);
  });

  it('does not limit unicast to a known MAC, even with the flood budget spent', () => {
    const { underlay, a, b } = hosts(10, 1);
    // B's MAC becomes known on A.
    b.sendFromBridge(ethernetFrame(BROADCAST, MAC_B, 'hello', 0x0806));
    a.receive();
    a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A, 'spends the one token', 0x0806));
    a.sendFromBridge(ethernetFrame(BROADCAST, MAC_A, 'limited', 0x0806));
    const before = underlay.log.length;
    for (let i = 0; i < 50; i++) a.sendFromBridge(ethernetFrame(MAC_B, MAC_A, `unicast ${i}`));
    expect(underlay.log.length - before).toBe(50);
    expect(underlay.log.slice(before).every((d) => d.to === B)).toBe(true);
    expect(a.network.counters.drops.flood_limited).toBe(1);
  });

  it('counts unknown unicast in the same budget', () => {
    const { a } = hosts(10, 3);
    for (let i = 0; i < 5; i++) a.sendFromBridge(ethernetFrame('02:00:00:00:00:99', MAC_A, `unknown ${i}`));
    expect(a.network.counters.floodedFrames).toBe(3);
    expect(a.network.counters.drops.flood_limited).toBe(2);
  });

  it('leaves a VNI without peers to the no_peers count', () => {
    const underlay = new FakeUnderlay();
    const lonely = new SimVtep(A, underlay, 100, []);
    lonely.network.floodLimiter = new TokenBucket(1, 1, lonely.clock);
    for (let i = 0; i < 3; i++) lonely.sendFromBridge(ethernetFrame(BROADCAST, MAC_A, 'anyone?', 0x0806));
    expect(lonely.network.counters.drops.no_peers).toBe(3);
    expect(lonely.network.counters.drops.flood_limited).toBe(0);
  });
});

/** A TAP with offloads on: every frame behind a virtio_net_hdr. */
class OffloadTap extends FakeTap {
  readonly vnetHeader = true;
}

/** An IPv4 TCP frame of `payload` bytes for `dst`, behind a virtio_net_hdr asking for TSO at gsoSize. */
function tsoFrame(dst: string, src: string, payload: number, gsoSize: number): Buffer {
  const vnet = Buffer.alloc(VNET_HDR_LEN);
  vnet[1] = GSO_TCPV4;
  vnet.writeUInt16LE(gsoSize, 4);
  const eth = ethernetFrame(dst, src, '', 0x0800).subarray(0, 14);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 20 + payload, 2);
  ip[8] = 64;
  ip[9] = 6;
  Buffer.from([172, 18, 0, 11, 172, 18, 0, 12]).copy(ip, 12);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(5001, 2);
  tcp[12] = 5 << 4;
  tcp[13] = 0x10;
  return Buffer.concat([vnet, eth, ip, tcp, Buffer.alloc(payload, 0x61)]);
}

describe('the flood rate limit on the TSO path', () => {
  it('charges every segment of a flooded TSO frame, and drops the frame whole once the budget is spent', () => {
    const clock = new ManualClock();
    const underlay = new FakeUnderlay();
    const socket = underlay.socket(A);
    underlay.socket(B);
    const remotes = new RemoteTable(VXLAN_PORT);
    const engine = new Engine({ socket, remotes, clock, batchSize: 16, maxFrameSize: 1518, learnRemotes: false, segmenter: pureSegmenter() });
    const tap = new OffloadTap();
    const network = new Network(100, new Fdb({ clock }), tap);
    network.addPeer(remotes.add(B).id);
    network.floodLimiter = new TokenBucket(100, 10, clock);
    engine.addNetwork(network);

    // 4 segments of 1000 bytes each, to a MAC nobody knows: flooded.
    const frame = tsoFrame('02:00:00:00:00:99', MAC_A, 4000, 1000);
    for (let i = 0; i < 5; i++) tap.fromBridge.push(frame);
    engine.drainTap(network);
    const counters = network.counters;
    // 10 tokens: frames 1-3 pass (the third into debt), frames 4 and 5 do not.
    expect(counters.floodedFrames).toBe(3);
    expect(counters.txFrames).toBe(12);
    expect(counters.drops.flood_limited).toBe(8);
    expect(counters.drops.bad_frame).toBe(0);
  });
});

describe('FailureEpisodes', () => {
  it('says once when failures start and once when they stop', () => {
    const episodes = new FailureEpisodes();
    expect(episodes.update(0, 10)).toBe(EPISODE_NONE);
    expect(episodes.update(3, 10)).toBe(EPISODE_STARTED);
    expect(episodes.isFailing).toBe(true);
    expect(episodes.update(9, 10)).toBe(EPISODE_NONE);
    expect(episodes.update(9, 10)).toBe(EPISODE_NONE); // quiet: nothing proves it works
    expect(episodes.update(12, 11)).toBe(EPISODE_NONE); // some still fail
    expect(episodes.update(12, 20)).toBe(EPISODE_ENDED);
    expect(episodes.lost).toBe(12);
    expect(episodes.isFailing).toBe(false);
    expect(episodes.update(12, 30)).toBe(EPISODE_NONE);
    expect(episodes.update(13, 30)).toBe(EPISODE_STARTED);
    expect(episodes.lost).toBe(1);
  });
});

describe('the flood rate in the configuration', () => {
  const network = { vni: 100, bridge: 'br100', peers: ['10.0.1.42'] };

  it('defaults to 2000 frames/s with a burst of one second', () => {
    const config = parseConfig({ networks: [network] });
    expect(config.networks[0].floodRate).toBe(2_000);
    expect(config.networks[0].floodBurst).toBeUndefined();
  });

  it('takes 0 (no limit) and a burst, and refuses what is not a rate', () => {
    const config = parseConfig({ networks: [{ ...network, floodRate: 0 }, { ...network, vni: 200, bridge: 'br200', floodRate: 500, floodBurst: 50 }] });
    expect(config.networks.map((n) => [n.floodRate, n.floodBurst])).toEqual([
      [0, undefined],
      [500, 50],
    ]);
    expect(() => parseConfig({ networks: [{ ...network, floodRate: -1 }] })).toThrow(ConfigError);
    expect(() => parseConfig({ networks: [{ ...network, floodRate: 1.5 }] })).toThrow(/networks\[0\]\.floodRate/);
    expect(() => parseConfig({ networks: [{ ...network, floodBurst: 0 }] })).toThrow(/networks\[0\]\.floodBurst/);
  });
});

describe('a datagram larger than the largest frame', () => {
  for (const socketGro of [false, true]) {
    it(`is dropped as oversize, not written to the TAP (${socketGro ? 'GRO-sized slots' : 'plain slots'})`, () => {
      const underlay = new FakeUnderlay();
      const a = new SimVtep(A, underlay, 100, [B], undefined, { maxFrameSize: 1518, socketGro });
      const header = Buffer.from([0x08, 0, 0, 0, 0, 0, 100, 0]);
      const big = Buffer.concat([header, ethernetFrame(BROADCAST, MAC_B, 'x'.repeat(9000), 0x88b5)]);
      const huge = Buffer.concat([header, ethernetFrame(BROADCAST, MAC_B, 'x'.repeat(65_000), 0x88b5)]);
      const fits = Buffer.concat([header, ethernetFrame(BROADCAST, MAC_B, 'x'.repeat(1500), 0x88b5)]);
      for (const datagram of [big, huge, fits]) a.socket.inject(datagram, B);
      a.receive();
      expect(a.network.counters.drops.oversize).toBe(2);
      expect(a.tap.toBridge.map((f) => f.length)).toEqual([1514]);
      expect(a.engine.counters.rxDatagrams).toBe(3);
    });
  }
});
