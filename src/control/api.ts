// What the control server may read and change, and nothing more: the daemon
// implements it (as it does MetricsSource for the metrics), a test may stand
// in for it. A change the caller can fix fails with a ChangeError whose kind
// says why; server.ts alone turns kinds into HTTP statuses.

import type { EngineView, FdbView, NetworkView, PeerView } from './views';

export type ChangeErrorKind = 'invalid' | 'not-found' | 'conflict';

/** A runtime change that cannot be made (unknown VNI, bad address, ...); the message says why. */
export class ChangeError extends Error {
  constructor(
    message: string,
    readonly kind: ChangeErrorKind = 'invalid',
  ) {
    super(message);
  }
}

export interface ControlApi {
  /** Every network with its MTUs, peers, FDB size and counters. */
  networkViews(): NetworkView[];
  /** Daemon-wide counters: datagrams received, and drops before a VNI (bad_header, unknown_vni). */
  engineCounters(): EngineView;
  /** One row per remote that is a peer or a learned remote of vni (or of any network), with its counters. */
  peerViews(vni?: number): PeerView[];
  /** FDB entries, learned and static, of vni or of all networks. */
  fdbViews(vni?: number): FdbView[];
  /** False if it already was a peer. */
  addPeer(vni: number, address: string): boolean;
  /** False if it was not a peer. */
  removePeer(vni: number, address: string): boolean;
  /** Adds or replaces a static entry; remote must be a peer of vni. */
  addStatic(vni: number, mac: string, remote: string): void;
  /** False if there was no entry for mac. */
  removeStatic(vni: number, mac: string): boolean;
}
