// The daemon's side of a control-plane source: state in, the fewest runtime
// changes out, static peers left alone.

import { describe, expect, it } from 'vitest';
import { ControlPlaneApplier, type DataPlaneTarget } from '../../src/control-plane/apply';
import { Backoff } from '../../src/control-plane/backoff';
import { PeerOrigins } from '../../src/control-plane/origins';
import type { Origin } from '../../src/control-plane/source';

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
