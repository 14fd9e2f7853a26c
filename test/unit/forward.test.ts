import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock';
import { parseMac } from '../../src/core/ethernet';
import { Fdb, NO_REMOTE } from '../../src/core/fdb';
import { egressRemote } from '../../src/core/forward';
import { ethernetFrame } from '../helpers/sim';

describe('forwarding decision', () => {
  const fdb = new Fdb({ clock: new ManualClock() });
  const known = parseMac('02:00:00:00:00:0b')!;
  fdb.learn(known.high, known.low, 7);

  it('sends a frame to a learned MAC to its remote only', () => {
    expect(egressRemote(ethernetFrame('02:00:00:00:00:0b', '02:00:00:00:00:0a'), 0, fdb)).toBe(7);
  });

  it('floods broadcast, multicast and unknown unicast', () => {
    expect(egressRemote(ethernetFrame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a'), 0, fdb)).toBe(NO_REMOTE);
    expect(egressRemote(ethernetFrame('01:00:5e:00:00:01', '02:00:00:00:00:0a'), 0, fdb)).toBe(NO_REMOTE);
    expect(egressRemote(ethernetFrame('02:00:00:00:00:0c', '02:00:00:00:00:0a'), 0, fdb)).toBe(NO_REMOTE);
  });

  it('floods a multicast destination even if that MAC was somehow learned', () => {
    const group = parseMac('33:33:00:00:00:01')!;
    fdb.learn(group.high, group.low, 3);
    expect(egressRemote(ethernetFrame('33:33:00:00:00:01', '02:00:00:00:00:0a'), 0, fdb)).toBe(NO_REMOTE);
  });
});
