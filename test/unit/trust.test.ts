// Trust boundaries in the core, with --learn-remotes: learned remotes are
// bounded per VNI and age out; a stranger cannot take a MAC from a configured
// peer or a static entry (move_refused); MAC moves are rate-limited; metrics
// keep one series per configured peer and sum learned remotes.

import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock';
import { Fdb, LEARN_MOVE_LIMITED, LEARN_MOVE_REFUSED, LEARN_MOVED, LEARN_NEW, LEARN_REFRESHED, LEARN_STATIC_KEPT } from '../../src/core/fdb';
import { parseMac } from '../../src/core/ethernet';
import { createMetricsRegistry } from '../../src/metrics';
import { ethernetFrame, FakeUnderlay, SimVtep } from '../helpers/sim';
import { parseSamples } from '../helpers/metrics';

const VNI = 100;
const A = '10.0.1.41';
const B = '10.0.1.42';
const C = '10.0.1.43';
const STRANGER = '10.0.1.99';
const MAC_B = '02:00:00:00:00:0b';
const MAC_C = '02:00:00:00:00:0c';
const BROADCAST = 'ff:ff:ff:ff:ff:ff';

function vxlan(frame: Buffer, vni = VNI): Buffer {
  return Buffer.concat([Buffer.from([0x08, 0, 0, 0, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff, 0]), frame]);
}

function mac(text: string): { high: number; low: number } {
  return parseMac(text) as { high: number; low: number };
}

/** Host A serving VNI 100 with peers B and C, learning remotes; the underlay delivers to its socket only. */
function hostA(maxRemotes = 1024): SimVtep {
  const underlay = new FakeUnderlay();
  const a = new SimVtep(A, underlay, VNI, [B, C], new ManualClock(1_000), { learnRemotes: true });
  a.network.learnedRemotes.limit = maxRemotes;
  return a;
}

function from(a: SimVtep, sender: string, sourceMac: string, payload = 'x'): void {
  a.socket.inject(vxlan(ethernetFrame(BROADCAST, sourceMac, payload)), sender);
  a.receive();
}

function behind(a: SimVtep, sourceMac: string): string | undefined {
  const { high, low } = mac(sourceMac);
  return a.remotes.get(a.network.fdb.lookup(high, low))?.address;
}

describe('FDB moves', () => {
  const m = mac(MAC_B);

  it('a stranger cannot take a MAC learned from a configured peer, nor a static one', () => {
    const clock = new ManualClock(1_000);
    const fdb = new Fdb({ clock });
    expect(fdb.learn(m.high, m.low, 1, true)).toBe(LEARN_NEW);
    clock.advance(5_000);
    expect(fdb.learn(m.high, m.low, 9, false)).toBe(LEARN_MOVE_REFUSED);
    expect(fdb.lookup(m.high, m.low)).toBe(1);
    const s = mac(MAC_C);
    fdb.addStatic(s.high, s.low, 2);
    expect(fdb.learn(s.high, s.low, 9, false)).toBe(LEARN_MOVE_REFUSED);
    expect(fdb.learn(s.high, s.low, 1, true)).toBe(LEARN_STATIC_KEPT);
    expect(fdb.lookup(s.high, s.low)).toBe(2);
  });

  it('a configured peer takes a MAC from a stranger; strangers move among themselves', () => {
    const clock = new ManualClock(1_000);
    const fdb = new Fdb({ clock });
    expect(fdb.learn(m.high, m.low, 8, false)).toBe(LEARN_NEW);
    clock.advance(2_000);
    expect(fdb.learn(m.high, m.low, 9, false)).toBe(LEARN_MOVED);
    clock.advance(2_000);
    expect(fdb.learn(m.high, m.low, 1, true)).toBe(LEARN_MOVED);
    clock.advance(2_000);
    expect(fdb.learn(m.high, m.low, 9, false)).toBe(LEARN_MOVE_REFUSED);
  });

  it('once its entry aged, a MAC is free for anyone again', () => {
    const clock = new ManualClock(1_000);
    const fdb = new Fdb({ clock, ageingMs: 10_000 });
    fdb.learn(m.high, m.low, 1, true);
    clock.advance(10_001);
    expect(fdb.learn(m.high, m.low, 9, false)).toBe(LEARN_NEW);
    expect(fdb.lookup(m.high, m.low)).toBe(9);
  });

  it('moves between configured peers happen, at most once per MAC per second', () => {
    const clock = new ManualClock(1_000);
    const fdb = new Fdb({ clock });
    fdb.learn(m.high, m.low, 1, true);
    clock.advance(10);
    expect(fdb.learn(m.high, m.low, 2, true)).toBe(LEARN_MOVED);
    clock.advance(10);
    expect(fdb.learn(m.high, m.low, 1, true)).toBe(LEARN_MOVE_LIMITED);
    expect(fdb.lookup(m.high, m.low)).toBe(2);
    expect(fdb.learn(m.high, m.low, 2, true)).toBe(LEARN_REFRESHED);
    clock.advance(1_000);
    expect(fdb.learn(m.high, m.low, 1, true)).toBe(LEARN_MOVED);
    expect(fdb.lookup(m.high, m.low)).toBe(1);
  });
});

describe('the engine with --learn-remotes', () => {
  it('refuses the poisoning datagram (move_refused, not delivered) and keeps the MAC behind its peer', () => {
    const a = hostA();
    from(a, B, MAC_B, 'from b');
    expect(a.tap.toBridge).toHaveLength(1);
    a.clock.advance(5_000);
    from(a, STRANGER, MAC_B, 'poison');
    expect(a.network.counters.drops.move_refused).toBe(1);
    expect(a.tap.toBridge).toHaveLength(1);
    expect(behind(a, MAC_B)).toBe(B);
    // The stranger's own MACs are learned as before.
    from(a, STRANGER, '02:00:00:00:00:99');
    expect(behind(a, '02:00:00:00:00:99')).toBe(STRANGER);
  });

  it('moves a MAC between two configured peers (a migrated container)', () => {
    const a = hostA();
    from(a, B, MAC_B);
    a.clock.advance(3_000);
    from(a, C, MAC_B);
    expect(behind(a, MAC_B)).toBe(C);
    expect(a.network.counters.fdbMoved).toBe(1);
    a.clock.advance(100);
    from(a, B, MAC_B);
    expect(a.network.counters.fdbMoveLimited).toBe(1);
    expect(behind(a, MAC_B)).toBe(C);
  });

  it('accepts at most --max-remotes strangers per VNI; the rest are remotes_full drops', () => {
    const a = hostA(10);
    for (let i = 0; i < 25; i++) from(a, `10.9.0.${i + 1}`, `02:00:00:00:01:${(i + 16).toString(16)}`);
    expect(a.network.learnedRemotes.size).toBe(10);
    expect(a.network.counters.drops.remotes_full).toBe(15);
    expect(a.remotes.all().filter((r) => r.learned)).toHaveLength(10);
    // Peers are never subject to the limit.
    from(a, B, MAC_B);
    expect(behind(a, MAC_B)).toBe(B);
  });

  it('forgets a learned remote once its FDB entries aged and it sent nothing for the ageing time', () => {
    const a = hostA();
    a.network.fdb.ageingMs = 10_000;
    for (let i = 0; i < 50; i++) from(a, `10.9.1.${i + 1}`, `02:00:00:00:02:${(i + 16).toString(16)}`);
    expect(a.network.learnedRemotes.size).toBe(50);
    a.engine.housekeep();
    // One keeps talking; the others fall silent.
    for (let t = 0; t < 6; t++) {
      a.clock.advance(5_000);
      from(a, '10.9.1.1', '02:00:00:00:02:10');
      a.engine.housekeep();
    }
    expect(a.network.learnedRemotes.size).toBe(1);
    expect(a.remotes.all().map((r) => r.address).sort()).toEqual([B, C, '10.9.1.1'].sort());
    expect(a.network.counters.remotesAgedOut).toBe(49);
    // Room again: a new stranger is accepted.
    from(a, '10.9.2.1', '02:00:00:00:03:01');
    expect(a.network.learnedRemotes.size).toBe(2);
  });

  it('has one metric series per configured peer and one peer="learned" for all learned remotes, monotonic after ageing', async () => {
    const a = hostA(5_000);
    a.network.fdb.ageingMs = 1_000;
    from(a, B, MAC_B);
    for (let i = 0; i < 2_000; i++) from(a, `10.8.${i >> 8}.${i & 0xff}`, `02:00:00:01:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`);
    const source = { engine: a.engine, remotes: a.remotes };
    const registry = createMetricsRegistry(source, { defaultMetrics: false });
    const before = parseSamples(await registry.metrics());
    expect(before.series('tsvtep_peer_received_datagrams_total').map(([labels]) => labels.peer).sort()).toEqual([B, C, 'learned'].sort());
    expect(before.value('tsvtep_peer_received_datagrams_total', { peer: 'learned' })).toBe(2_000);
    expect(before.value('tsvtep_learned_remotes', { vni: '100' })).toBe(2_000);
    for (let t = 0; t < 3; t++) {
      a.clock.advance(5_000);
      a.engine.housekeep();
    }
    const after = parseSamples(await registry.metrics());
    expect(a.network.learnedRemotes.size).toBe(0);
    expect(after.value('tsvtep_learned_remotes', { vni: '100' })).toBe(0);
    expect(after.value('tsvtep_peer_received_datagrams_total', { peer: 'learned' })).toBe(2_000);
    expect(after.value('tsvtep_learned_remotes_aged_out_total', { vni: '100' })).toBe(2_000);
  });
});
