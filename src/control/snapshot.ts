// What the control interface answers (the shapes in views.ts), built from the
// running networks and the remote table. Everything is copied, so an answer
// never holds live counters. Pure: the daemon passes its state in.

import { formatMac } from '../core/ethernet';
import type { Network } from '../core/network';
import type { Remote } from '../core/remotes';
import type { FdbView, NetworkInfo, NetworkView, PeerView } from './views';

/** One network as the daemon runs it: what it says of it, and the core's state. */
export interface RunningState {
  info: NetworkInfo;
  network: Network;
}

export interface RemoteLookup {
  get(id: number): Remote | undefined;
}

/** The peers' addresses, '?' for an id the table no longer has. */
export function peerAddresses(network: Network, remotes: RemoteLookup): string[] {
  return network.peers.map((id) => remotes.get(id)?.address ?? '?');
}

export function networkViews(running: Iterable<RunningState>, remotes: RemoteLookup): NetworkView[] {
  return [...running].map(({ info, network }) => {
    const { fdb, counters } = network;
    return {
      ...info,
      peers: peerAddresses(network, remotes),
      ageingSeconds: fdb.ageingMs / 1000,
      fdbEntries: fdb.size,
      fdbLimit: fdb.maxEntries,
      // With --suppress-arp, arpSuppressed and ndSuppressed join the counters.
      counters: { ...counters, drops: { ...counters.drops }, ...network.tapObserver?.suppressor?.counters },
    };
  });
}

/** Who wants the peer at address (canonical) in vni: static, etcd, evpn. */
export type PeerSources = (vni: number, address: string) => readonly string[];
/** Where a non-learned FDB entry of vni came from (static, etcd, evpn); undefined: static. */
export type EntrySource = (vni: number, mac: string) => string | undefined;

/**
 * One row per remote, with the VNIs (of vni, or all) it is a peer or a learned
 * remote of (learned: true for one that is no configured peer), and where it
 * comes from in them; counters cover all its VNIs.
 */
export function peerViews(running: Iterable<RunningState>, remotes: RemoteLookup, vni?: number, sourcesOf: PeerSources = () => []): PeerView[] {
  const vnisOf = new Map<number, number[]>();
  for (const { info, network } of running) {
    if (vni !== undefined && info.vni !== vni) continue;
    for (const id of [...network.peers, ...network.learnedRemotes.ids()]) vnisOf.set(id, [...(vnisOf.get(id) ?? []), info.vni]);
  }
  const out: PeerView[] = [];
  for (const [id, vnis] of vnisOf) {
    const remote = remotes.get(id);
    if (!remote) continue;
    const sources = [...new Set(vnis.flatMap((v) => sourcesOf(v, remote.address)))].sort();
    out.push({ address: remote.address, vnis, sources, learned: remote.learned, ...remote.counters });
  }
  return out;
}

/** FDB entries, learned and static, of vni or of every network, each with its source (learned, static, etcd, evpn). */
export function fdbViews(running: Iterable<RunningState>, remotes: RemoteLookup, vni?: number, sourceOf: EntrySource = () => undefined): FdbView[] {
  const out: FdbView[] = [];
  for (const { info, network } of running) {
    if (vni !== undefined && info.vni !== vni) continue;
    for (const entry of network.fdb.entries()) {
      const mac = formatMac(entry.macHigh, entry.macLow);
      out.push({
        vni: info.vni,
        mac,
        source: entry.isStatic ? (sourceOf(info.vni, mac) ?? 'static') : 'learned',
        remote: remotes.get(entry.remoteId)?.address ?? '?',
        isStatic: entry.isStatic,
        ageSeconds: Math.floor(entry.ageMs / 1000),
      });
    }
  }
  return out;
}
