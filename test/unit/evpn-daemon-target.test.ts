import { describe, expect, it } from 'vitest';
import { DaemonTarget } from '../../src/control-plane/evpn/daemon-target';

/** The runtime API calls DaemonTarget makes, on a daemon stand-in with one network of static peers. */
class FakeDaemon {
  readonly peers = new Map<number, Set<string>>([[100, new Set(['10.0.1.42'])]]);
  readonly statics = new Map<string, string>();
  network(vni: number) {
    return this.peers.has(vni) ? ({} as never) : undefined;
  }
  addPeer(vni: number, address: string): boolean {
    const peers = this.peers.get(vni) as Set<string>;
    if (peers.has(address)) return false;
    peers.add(address);
    return true;
  }
  removePeer(vni: number, address: string): boolean {
    return this.peers.get(vni)?.delete(address) ?? false;
  }
  addStatic(vni: number, mac: string, remote: string): void {
    this.statics.set(`${vni}|${mac.toLowerCase()}`, remote);
  }
  removeStatic(vni: number, mac: string): boolean {
    return this.statics.delete(`${vni}|${mac.toLowerCase()}`);
  }
}

describe('the daemon as a control-plane target', () => {
  it('keeps a static peer that EVPN also announced when EVPN drops it, and removes an EVPN-only one', () => {
    const daemon = new FakeDaemon();
    const target = new DaemonTarget(daemon as never);
    target.addPeer(100, '10.0.1.42', 'evpn');
    target.addPeer(100, '10.0.1.43', 'evpn');
    expect(target.peerOriginsOf(100, '10.0.1.42')).toEqual(['evpn', 'static']);
    expect(target.peerOriginsOf(100, '10.0.1.43')).toEqual(['evpn']);
    target.removePeer(100, '10.0.1.42', 'evpn');
    target.removePeer(100, '10.0.1.43', 'evpn');
    expect([...(daemon.peers.get(100) ?? [])]).toEqual(['10.0.1.42']);
    expect(target.peerOriginsOf(100, '10.0.1.42')).toEqual(['static']);
  });

  it('says which MAC entries EVPN installed, removes only those, and starts afresh on a network added again', () => {
    const daemon = new FakeDaemon();
    const target = new DaemonTarget(daemon as never);
    target.addPeer(100, '10.0.1.43', 'evpn');
    target.putRemoteMac(100, '02:00:00:00:00:0A', '10.0.1.43', 'evpn');
    expect(target.macOriginOf(100, '02:00:00:00:00:0a')).toBe('evpn');
    target.removeRemoteMac(100, '02:00:00:00:00:0b', 'evpn');
    expect(daemon.statics.size).toBe(1);
    target.removeRemoteMac(100, '02:00:00:00:00:0a', 'evpn');
    expect(daemon.statics.size).toBe(0);
    // The network goes and comes back (reload): its peers are gone with it.
    daemon.peers.set(100, new Set());
    target.forgetNetwork(100);
    target.addPeer(100, '10.0.1.43', 'evpn');
    expect([...(daemon.peers.get(100) ?? [])]).toEqual(['10.0.1.43']);
  });
});
