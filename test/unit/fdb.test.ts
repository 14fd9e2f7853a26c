import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock';
import {
  Fdb,
  LEARN_MOVED,
  LEARN_NEW,
  LEARN_REFRESHED,
  LEARN_STATIC_KEPT,
  LEARN_TABLE_FULL,
  NO_REMOTE,
} from '../../src/core/fdb';
import { formatMac, parseMac } from '../../src/core/ethernet';

const mac = (text: string) => parseMac(text) as { high: number; low: number };

describe('FDB', () => {
  it('learns a MAC behind a remote and finds it', () => {
    const fdb = new Fdb({ clock: new ManualClock() });
    const m = mac('02:00:00:00:00:01');
    expect(fdb.lookup(m.high, m.low)).toBe(NO_REMOTE);
    expect(fdb.learn(m.high, m.low, 3)).toBe(LEARN_NEW);
    expect(fdb.lookup(m.high, m.low)).toBe(3);
    expect(fdb.learn(m.high, m.low, 3)).toBe(LEARN_REFRESHED);
    expect(fdb.size).toBe(1);
  });

  it('ages learned entries after the ageing time, and refreshing restarts the clock', () => {
    const clock = new ManualClock();
    const fdb = new Fdb({ ageingMs: 300_000, clock });
    const a = mac('02:00:00:00:00:0a');
    const b = mac('02:00:00:00:00:0b');
    fdb.learn(a.high, a.low, 1);
    fdb.learn(b.high, b.low, 2);
    clock.advance(200_000);
    fdb.learn(b.high, b.low, 2); // b seen again
    clock.advance(101_000); // a is now 301 s old, b 101 s
    expect(fdb.lookup(a.high, a.low)).toBe(NO_REMOTE);
    expect(fdb.lookup(b.high, b.low)).toBe(2);
    expect(fdb.ageOut()).toBe(1);
    expect(fdb.size).toBe(1);
    expect(fdb.entries().map((e) => formatMac(e.macHigh, e.macLow))).toEqual(['02:00:00:00:00:0b']);
  });

  it('moves a MAC seen behind another remote', () => {
    const fdb = new Fdb({ clock: new ManualClock() });
    const m = mac('02:aa:bb:cc:dd:ee');
    fdb.learn(m.high, m.low, 1);
    expect(fdb.learn(m.high, m.low, 2)).toBe(LEARN_MOVED);
    expect(fdb.lookup(m.high, m.low)).toBe(2);
  });

  it('never ages or moves a static entry', () => {
    const clock = new ManualClock();
    const fdb = new Fdb({ ageingMs: 1_000, clock });
    const m = mac('02:00:00:00:00:05');
    fdb.addStatic(m.high, m.low, 7);
    expect(fdb.learn(m.high, m.low, 8)).toBe(LEARN_STATIC_KEPT);
    clock.advance(10_000_000);
    expect(fdb.ageOut()).toBe(0);
    expect(fdb.lookup(m.high, m.low)).toBe(7);
  });

  it('stops learning at its limit and keeps serving what it has', () => {
    const fdb = new Fdb({ maxEntries: 100, clock: new ManualClock() });
    for (let i = 0; i < 100; i++) expect(fdb.learn(0x0200, i, 1)).toBe(LEARN_NEW);
    expect(fdb.learn(0x0200, 100, 1)).toBe(LEARN_TABLE_FULL);
    expect(fdb.size).toBe(100);
    for (let i = 0; i < 100; i++) expect(fdb.lookup(0x0200, i)).toBe(1);
  });

  it('stays correct through many inserts and removals (no lost entries after deletes)', () => {
    const clock = new ManualClock();
    const fdb = new Fdb({ maxEntries: 1000, ageingMs: 1000, clock });
    const live = new Map<number, number>();
    let seed = 12345;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let step = 0; step < 20_000; step++) {
      const low = random() % 3000;
      if (random() % 3 === 0) {
        expect(fdb.remove(0x0200, low)).toBe(live.has(low));
        live.delete(low);
      } else if (live.size < 1000 || live.has(low)) {
        fdb.learn(0x0200, low, low % 7);
        live.set(low, low % 7);
      }
    }
    expect(fdb.size).toBe(live.size);
    for (let low = 0; low < 3000; low++) expect(fdb.lookup(0x0200, low)).toBe(live.get(low) ?? NO_REMOTE);
  });

  it('forgets every entry of a remote that is removed', () => {
    const fdb = new Fdb({ clock: new ManualClock() });
    for (let i = 0; i < 50; i++) fdb.learn(0x0200, i, i % 2);
    expect(fdb.forgetRemote(1)).toBe(25);
    expect(fdb.size).toBe(25);
    expect(fdb.lookup(0x0200, 1)).toBe(NO_REMOTE);
    expect(fdb.lookup(0x0200, 2)).toBe(0);
  });
});
