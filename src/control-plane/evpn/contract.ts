// The control-plane contract as the EVPN source sees it.
//
// This is the shape the etcd fleet work (issue 14) defines in
// src/control-plane/source.ts: a source yields, per VNI it serves, the
// flood-list members and the remote MACs (with IPs and MAC mobility
// sequence numbers); the daemon's sink applies them next to the static peers.
// The names and fields here are the same, so that joining the two is
// replacing this import with '../source' (issue 14's DataPlaneTarget, in its
// apply.ts, has the same calls but forgetNetwork, and setNeighbours for ARP/ND
// suppression).

/** Where a peer or an FDB entry came from; shown by `tsvtep peers` and `fdb show`. */
export type Origin = 'static' | 'etcd' | 'evpn';

/** A MAC behind a remote VTEP, as the control plane announces it. */
export interface RemoteMac {
  /** Canonical, lower case: 02:00:01:00:00:64. */
  readonly mac: string;
  /** Canonical underlay address of the VTEP it lives behind. */
  readonly vtep: string;
  /** Canonical IPv4/IPv6 addresses seen for it (for ARP/ND suppression). */
  readonly ips: readonly string[];
  /** MAC mobility sequence number (RFC 7432 section 15): the higher one wins. */
  readonly seq: number;
}

/** What the control plane knows of one VNI, this host left out. */
export interface VniState {
  /** Canonical underlay addresses of the other VTEPs serving the VNI. */
  readonly members: ReadonlySet<string>;
  /** One entry per MAC, moves already resolved by sequence number. */
  readonly macs: ReadonlyMap<string, RemoteMac>;
}

export const EMPTY_VNI_STATE: VniState = { members: new Set(), macs: new Map() };

/** Receives a source's state. */
export interface ControlPlaneSink {
  /** The complete state of vni now; whatever is not in it is gone. */
  replace(vni: number, state: VniState): void;
}

/** What metrics, /healthz and the log show of a source. */
export interface ControlPlaneStatus {
  readonly origin: Exclude<Origin, 'static'>;
  /** Connected, announcing and watching. */
  readonly up: boolean;
  /** Members per served VNI, as last known. */
  readonly members: ReadonlyMap<number, number>;
  /** Sessions started again after a failure. */
  readonly watchRestarts: number;
  /** MACs that moved from one remote VTEP to another (MAC mobility). */
  readonly macMoves: number;
  /** Routes skipped as malformed or over a limit, by reason. */
  readonly skipped: Readonly<Record<string, number>>;
  /** Why it is down, in a few words; undefined while up. */
  readonly lastError: string | undefined;
}

export interface ControlPlaneSource {
  readonly origin: Exclude<Origin, 'static'>;
  /** Starts announcing and learning; never throws for an unreachable backend (status says). */
  start(sink: ControlPlaneSink): void;
  /** The VNIs this host serves: announced as member, and the only ones imported. */
  serve(vnis: readonly number[]): void;
  /** A MAC behind this host's TAP, with the IPs seen for it (MAC/IP distribution). */
  announceMac(vni: number, mac: string, ips: readonly string[]): void;
  /** That MAC aged out or its network went away. */
  withdrawMac(vni: number, mac: string): void;
  status(): ControlPlaneStatus;
  /** Withdraws this host's announcements (bounded time) and stops. */
  stop(): Promise<void>;
}

/** The daemon's runtime API, as a sink uses it (the daemon, or a test's stand-in). */
export interface DataPlaneTarget {
  /** Adds origin to the peer of vni at address (canonical). Throws for an address this host refuses. */
  addPeer(vni: number, address: string, origin: Origin): unknown;
  /** Takes origin off that peer; the peer goes, with its learned entries, once no origin is left. */
  removePeer(vni: number, address: string, origin: Origin): unknown;
  /** Points mac at the peer vtep (which addPeer made a peer first). */
  putRemoteMac(vni: number, mac: string, vtep: string, origin: Origin): unknown;
  /** Removes mac if origin put it there. */
  removeRemoteMac(vni: number, mac: string, origin: Origin): unknown;
  /** Whether the daemon runs vni (a source may lag behind a network just removed). */
  hasNetwork(vni: number): boolean;
  /** vni is gone: forget what was applied there, so that a network added again starts afresh. */
  forgetNetwork(vni: number): void;
}
