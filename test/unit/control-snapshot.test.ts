// What the control interface answers (status, peers, fdb show), built from
// core state without a daemon: copies of the counters, peers (and learned
// remotes) grouped by remote, FDB entries with their age.

import { describe, expect, it } from 'vitest';
import { addressRecord } from '../../src/core/address';
import { ManualClock } from '../../src/core/clock';
import { parseMac } from '../../src/core/ethernet';
import { Fdb, NO_REMOTE } from '../../src/core/fdb';
import { Network } from '../../src/core/network';
import type { FramePort } from '../../src/core/ports';
import { RemoteTable } from '../../src/core/remotes';
import { fdbViews, networkViews, peerViews, type RunningState } from '../../src/control/snapshot';

const clock = new ManualClock(1_000_000);
const remotes = new RemoteTable(4789);
const a = remotes.add('10.0.1.41');
const b = remotes.add('fd00::2');

function running(vni: number, peers: number[]): RunningState {
  const network = new Network(vni, new Fdb({ ageingMs: 60_000, maxEntries: 100, clock }), {} as FramePort);
  for (const id of peers) network.addPeer(id);
  return { info: { vni, bridge: `br${vni}`, tap: `tsv${vni}`, tapMtu: 1500, overlayMtu: 1450, peers: [] }, network };
}

const first = running(100, [a.id, b.id]);
const second = running(200, [a.id]);
const both = [first, second];

describe('control snapshot', () => {
  it('describes each network with its peers, FDB size and limit, and a copy of its counters', () => {
    first.network.counters.rxFrames = 5;
    first.network.counters.drops.runt = 2;
    const [view] = networkViews([first], remotes);
    expect(view).toMatchObject({ vni: 100, bridge: 'br100', tap: 'tsv100', peers: ['10.0.1.41', 'fd00::2'], ageingSeconds: 60, fdbEntries: 0, fdbLimit: 100 });
    expect(view.counters.rxFrames).toBe(5);
    expect(view.counters.drops.runt).toBe(2);
    // Later traffic does not change an answer already given.
    first.network.counters.rxFrames = 6;
    first.network.counters.drops.runt = 3;
    expect(view.counters.rxFrames).toBe(5);
    expect(view.counters.drops.runt).toBe(2);
  });

  it('lists each remote once with the VNIs it serves, or only those of one VNI', () => {
    a.counters.txDatagrams = 7;
    expect(peerViews(both, remotes)).toEqual([
      { address: '10.0.1.41', vnis: [100, 200], sources: [], learned: false, rxDatagrams: 0, rxBytes: 0, txDatagrams: 7, txBytes: 0 },
      { address: 'fd00::2', vnis: [100], sources: [], learned: false, rxDatagrams: 0, rxBytes: 0, txDatagrams: 0, txBytes: 0 },
    ]);
    expect(peerViews(both, remotes, 200).map((p) => [p.address, p.vnis])).toEqual([['10.0.1.41', [200]]]);
    expect(peerViews(both, remotes, 300)).toEqual([]);
  });

  it('lists remotes learned with --learn-remotes after the peers, marked as learned', () => {
    const third = running(300, [a.id]);
    const id = third.network.learnedRemotes.admit(NO_REMOTE, remotes, addressRecord('10.0.1.99', 4789), 0, third.network.counters);
    remotes.get(id)!.counters.rxDatagrams = 3;
    expect(peerViews([third], remotes)).toEqual([
      { address: '10.0.1.41', vnis: [300], sources: [], learned: false, rxDatagrams: 0, rxBytes: 0, txDatagrams: 7, txBytes: 0 },
      { address: '10.0.1.99', vnis: [300], sources: [], learned: true, rxDatagrams: 3, rxBytes: 0, txDatagrams: 0, txBytes: 0 },
    ]);
    // Learned on VNI 300 only: the other networks do not list it.
    expect(peerViews(both, remotes).map((p) => p.address)).toEqual(['10.0.1.41', 'fd00::2']);
  });

  it('shows learned entries with their age in whole seconds and static ones as static', () => {
    const learned = parseMac('02:00:00:00:00:01')!;
    const pinned = parseMac('02:00:00:00:00:02')!;
    second.network.fdb.learn(learned.high, learned.low, a.id);
    second.network.fdb.addStatic(pinned.high, pinned.low, a.id);
    clock.advance(2_500);
    const entries = fdbViews(both, remotes, 200).sort((x, y) => x.mac.localeCompare(y.mac));
    expect(entries).toEqual([
      { vni: 200, mac: '02:00:00:00:00:01', remote: '10.0.1.41', isStatic: false, ageSeconds: 2, source: 'learned' },
      { vni: 200, mac: '02:00:00:00:00:02', remote: '10.0.1.41', isStatic: true, ageSeconds: 0, source: 'static' },
    ]);
    expect(fdbViews(both, remotes, 100)).toEqual([]);
    expect(fdbViews(both, remotes)).toHaveLength(2);
  });

  it('says where each peer and entry came from: static, a control plane, or both', () => {
    const origins: Record<string, string[]> = { '100/10.0.1.41': ['etcd', 'static'], '200/10.0.1.41': ['etcd'], '100/fd00::2': ['evpn'] };
    const views = peerViews(both, remotes, undefined, (vni, address) => origins[`${vni}/${address}`] ?? []);
    expect(views.map((p) => [p.address, p.sources])).toEqual([
      ['10.0.1.41', ['etcd', 'static']],
      ['fd00::2', ['evpn']],
    ]);
    const entries = fdbViews(both, remotes, 200, (_vni, mac) => (mac === '02:00:00:00:00:02' ? 'evpn' : undefined));
    expect(entries.map((e) => [e.mac, e.source]).sort()).toEqual([
      ['02:00:00:00:00:01', 'learned'],
      ['02:00:00:00:00:02', 'evpn'],
    ]);
  });
});
