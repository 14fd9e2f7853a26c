// The daemon's side of a control-plane source: state in, the fewest runtime
// changes out, static peers left alone.

import { describe, expect, it } from 'vitest';
import { ControlPlaneApplier, type DataPlaneTarget } from '../../src/control-plane/apply';
import { Backoff } from '../../src/control-plane/backoff';
import { PeerOrigins } from '../../src/control-plane/origins';
import type { NeighbourBinding } from '../../src/core/arp-suppress';
import type { Origin, RemoteMac } from '../../src/control-plane/source';

class FakeDaemon implements DataPlaneTarget {
  readonly origins = new PeerOrigins();
  readonly calls: string[] = [];
  refuse = new Set<string>();
  hasNetwork(vni: number): boolean {
    return vni === 100;
  }
  addPeer(vni: number, address: string, origin: Origin): void {
    if (this.refuse.has(address)) throw new Error('an address of this host');
    this.origins.add(vni, address, origin);
    this.calls.push(`+${address}`);
  }
  removePeer(vni: number, address: string, origin: Origin): void {
    this.origins.remove(vni, address, origin);
    this.calls.push(`-${address}`);
  }
  readonly macs = new Map<string, string>();
  neighbours: readonly NeighbourBinding[] = [];
  putRemoteMac(_vni: number, mac: string, vtep: string): void {
    this.macs.set(mac, vtep);
  }
  removeRemoteMac(_vni: number, mac: string): void {
    this.macs.delete(mac);
  }
  setNeighbours(_vni: number, bindings: readonly NeighbourBinding[]): void {
    this.neighbours = bindings;
  }
}

const quiet = { info: () => undefined, warn: () => undefined };
const state = (...members: string[]) => ({ members: new Set(members), macs: new Map() });

describe('applying a control-plane state', () => {
  it('adds and removes only the difference', () => {
    const daemon = new FakeDaemon();
    const applier = new ControlPlaneApplier(daemon, 'etcd', quiet);
    applier.replace(100, state('10.0.1.42', '10.0.1.43'));
    applier.replace(100, state('10.0.1.43', '10.0.1.44'));
    applier.replace(100, state('10.0.1.43', '10.0.1.44'));
    expect(daemon.calls).toEqual(['+10.0.1.42', '+10.0.1.43', '-10.0.1.42', '+10.0.1.44']);
    expect([...applier.members(100)].sort()).toEqual(['10.0.1.43', '10.0.1.44']);
  });

  it('leaves networks it does not run alone, and a refused member out, warning once', () => {
    const daemon = new FakeDaemon();
    const warnings: string[] = [];
    const applier = new ControlPlaneApplier(daemon, 'etcd', { info: () => undefined, warn: (_f, m) => warnings.push(m) });
    applier.replace(200, state('10.0.1.42'));
    daemon.refuse.add('10.0.1.41');
    applier.replace(100, state('10.0.1.41'));
    applier.replace(100, state('10.0.1.41', '10.0.1.42'));
    expect(daemon.calls).toEqual(['+10.0.1.42']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('10.0.1.41 refused');
  });

  it('applies everything again to a network that was removed and added back (forget)', () => {
    const daemon = new FakeDaemon();
    const applier = new ControlPlaneApplier(daemon, 'evpn', quiet);
    const entry: RemoteMac = { mac: '02:00:02:00:00:64', vtep: '10.0.1.42', ips: [], seq: 0 };
    const full = { members: new Set(['10.0.1.42']), macs: new Map([[entry.mac, entry]]) };
    applier.replace(100, full);
    // The network goes with its peers and entries; the daemon forgets them itself.
    daemon.macs.clear();
    applier.forget(100);
    expect(applier.members(100).size).toBe(0);
    applier.replace(100, full);
    expect(daemon.calls).toEqual(['+10.0.1.42', '+10.0.1.42']);
    expect(daemon.macs.get(entry.mac)).toBe('10.0.1.42');
  });
});

describe('applying remote MACs', () => {
  it('installs MACs behind members, follows a move (counted), and drops them with their VTEP', () => {
    const daemon = new FakeDaemon();
    const applier = new ControlPlaneApplier(daemon, 'etcd', quiet);
    const m = (vtep: string, seq: number): RemoteMac => ({ mac: '02:00:02:00:00:64', vtep, ips: ['172.18.0.12'], seq });
    const withMac = (entry: RemoteMac, ...members: string[]) => ({ members: new Set(members), macs: new Map([[entry.mac, entry]]) });
    applier.replace(100, withMac(m('10.0.1.42', 0), '10.0.1.42', '10.0.1.43'));
    expect(daemon.macs.get('02:00:02:00:00:64')).toBe('10.0.1.42');
    expect(daemon.neighbours).toEqual([{ ip: '172.18.0.12', mac: '02:00:02:00:00:64' }]);
    applier.replace(100, withMac(m('10.0.1.43', 1), '10.0.1.42', '10.0.1.43'));
    expect(daemon.macs.get('02:00:02:00:00:64')).toBe('10.0.1.43');
    expect(applier.macMoves).toBe(1);
    applier.replace(100, withMac(m('10.0.1.43', 1), '10.0.1.42'));
    expect(daemon.macs.size).toBe(0);
    expect(daemon.neighbours).toEqual([]);
  });
});

describe('peer origins', () => {
  it('keeps a peer while any origin wants it', () => {
    const origins = new PeerOrigins();
    origins.add(100, '10.0.1.42', 'static');
    origins.add(100, '10.0.1.42', 'etcd');
    expect(origins.of(100, '10.0.1.42')).toEqual(['etcd', 'static']);
    expect(origins.remove(100, '10.0.1.42', 'etcd')).toBe(1);
    expect(origins.remove(100, '10.0.1.42', 'static')).toBe(0);
    expect(origins.of(100, '10.0.1.42')).toEqual([]);
  });
});

describe('backoff', () => {
  it('doubles up to its ceiling, with jitter, and starts over after a success', () => {
    const backoff = new Backoff(200, 5_000, () => 1);
    expect([1, 2, 3, 4, 5, 6, 7].map(() => backoff.next())).toEqual([200, 400, 800, 1600, 3200, 5000, 5000]);
    backoff.reset();
    expect(backoff.next()).toBe(200);
    const low = new Backoff(200, 5_000, () => 0);
    expect(low.next()).toBe(100);
  });
});
