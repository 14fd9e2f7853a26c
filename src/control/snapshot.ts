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
      counters: { ...counters, drops: { ...counters.drops } },
    };
  });
}

/**
 * One row per remote, with the VNIs (of vni, or all) it is a peer or a learned
 * remote of (learned: true for one that is no configured peer); counters
 * cover all its VNIs.
 */
export function peerViews(running: Iterable<RunningState>, remotes: RemoteLookup, vni?: number): PeerView[] {
  const vnisOf = new Map<number, number[]>();
  for (const { info, network } of running) {
    if (vni !== undefined && info.vni !== vni) continue;
    for (const id of [...network.peers, ...network.learnedRemotes.ids()]) vnisOf.set(id, [...(vnisOf.get(id) ?? []), info.vni]);
  }
  const out: PeerView[] = [];
  for (const [id, vnis] of vnisOf) {
    const remote = remotes.get(id);
    if (remote) out.push({ address: remote.address, vnis, learned: remote.learned, ...remote.counters });
  }
  return out;
}

/** FDB entries, learned and static, of vni or of every network. */
export function fdbViews(running: Iterable<RunningState>, remotes: RemoteLookup, vni?: number): FdbView[] {
  const out: FdbView[] = [];
  for (const { info, network } of running) {
    if (vni !== undefined && info.vni !== vni) continue;
    for (const entry of network.fdb.entries()) {
      out.push({
        vni: info.vni,
        mac: formatMac(entry.macHigh, entry.macLow),
        remote: remotes.get(entry.remoteId)?.address ?? '?',
        isStatic: entry.isStatic,
        ageSeconds: Math.floor(entry.ageMs / 1000),
      });
    }
  }
  return out;
}
