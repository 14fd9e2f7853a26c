// The contract between a fleet control plane and the daemon.
//
// A control-plane source (etcd or BGP EVPN) tells the daemon, per
// VNI it serves, two things: the VTEPs that are members of the VNI (its flood
// list, and the addresses VXLAN is accepted from) and the MACs, with their
// IPs, that live behind those VTEPs. It also announces this host: the VNIs it
// serves under its VTEP address, and later the MACs behind its TAP.
//
// A source never touches the data plane. It hands the whole state of a VNI to
// its sink whenever that state changed (coalesced: a burst of changes is one
// call), and the sink (apply.ts) diffs it against what it applied before and
// makes the changes through the daemon's runtime API, next to the static
// peers. So a source that lost its backend keeps its last state, and a source
// that resynchronised hands over the new one: the sink removes what is gone.

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

/** Receives a source's state; apply.ts is the daemon's. */
export interface ControlPlaneSink {
  /** The complete state of vni now; whatever is not in it is gone. */
  replace(vni: number, state: VniState): void;
}

/** What metrics, /healthz and the log show of a source. */
export interface ControlPlaneStatus {
  readonly origin: Exclude<Origin, 'static'>;
  /** Connected, registered and watching. */
  readonly up: boolean;
  /** Members per served VNI, as last known. */
  readonly members: ReadonlyMap<number, number>;
  /** Sessions (watch and lease) started again after a failure. */
  readonly watchRestarts: number;
  /** MACs that moved from one remote VTEP to another (MAC mobility), as applied here. */
  readonly macMoves: number;
  /** Keys or routes skipped as malformed or over a limit, by reason. */
  readonly skipped: Readonly<Record<string, number>>;
  /** Why it is down, in a few words; undefined while up. */
  readonly lastError: string | undefined;
  /** What this host announces now (EVPN routes), where the source counts them. */
  readonly announced?: number;
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
  /** Told when a MAC this host announced was taken over by another VTEP with a higher sequence number (it moved there). */
  onMacLost: (vni: number, mac: string) => void;
  /** Its state; macMoves is left 0 (the applier counts those, see RunningControlPlane). */
  status(): ControlPlaneStatus;
  /** Withdraws this host's announcements (bounded time) and stops. */
  stop(): Promise<void>;
}

/** A source joined to the daemon (attach.ts): what the CLI, metrics and /healthz hold on to. */
export interface RunningControlPlane {
  status(): ControlPlaneStatus;
  stop(): Promise<void>;
}
