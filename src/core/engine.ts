// The forwarding engine: RFC 7348 encapsulation and decapsulation between the
// networks' TAPs and the shared UDP socket. A small facade over the two
// directions, which share nothing but the networks, the remotes and the path
// MTUs:
//
//   tx.ts       TAP -> overlay: encapsulate, flood, queue, send; backpressure
//     trains.ts   TSO frames cut into UDP GSO trains
//     too-big.ts  frames too big for the path: ICMP answer, fragments, or drop
//   rx.ts       overlay -> TAP: check, learn, decapsulate, coalesce, write
//
// It does no I/O of its own beyond the batched calls on the ports it is given
// (ports.ts), so it runs the same over the native devices and over in-memory
// fakes. Steady state allocates nothing: frames live in two preallocated
// slabs with headroom in front of every slot, so the VXLAN header is written
// in place.

import type { Clock } from './clock';
import type { EngineCounters } from './counters';
import type { Network } from './network';
import type { Segmenter } from './offload';
import { VNET_HDR_LEN } from './offload';
import type { DatagramPort } from './ports';
import { Slab } from './batches';
import { TcpCoalescer } from './coalesce';
import { IoErrorReports, type IoErrorKind } from './io-errors';
import { forgetUnusedLearned } from './learned-remotes';
import { PathMtus } from './path-mtu';
import type { RemoteTable } from './remotes';
import { Rx } from './rx';
import { Tx } from './tx';
import { VXLAN_HEADER_LEN } from './vxlan';

/** Bytes kept free in front of every slot; room for the VXLAN header and more. */
export const HEADROOM = 64;

export interface EngineOptions {
  socket: DatagramPort;
  remotes: RemoteTable;
  clock: Clock;
  /** Frames per read and datagrams per recvmmsg. */
  batchSize: number;
  /** Largest Ethernet frame carried (TAP MTU + 14 + 4 for a VLAN tag). */
  maxFrameSize: number;
  /** Accept datagrams from any address and learn it as a remote (the kernel's behaviour). */
  learnRemotes: boolean;
  /**
   * DF on outer IPv4 packets: true sets it (the kernel's path MTU applies and
   * a send beyond it fails with EMSGSIZE), false clears it (routers may
   * fragment), 'inherit' copies the inner packet's (set for IPv6 inside).
   * Default false.
   */
  dontFragment?: boolean | 'inherit';
  /** Called once per failing errno on a send or TAP write, for logging. */
  onIoError?: (what: IoErrorKind, errno: number, vni: number) => void;
  /** Splits TSO frames and completes checksums; needed when a network's TAP has offloads on. */
  segmenter?: Segmenter;
  /**
   * The socket hands over runs of datagrams from one sender as one buffer (UDP_GRO): receive slots
   * are sized for 64 KiB and each run is split here.
   */
  socketGro?: boolean;
  /** Called once if the socket turned UDP GSO off (the kernel refused it); it then sends segment by segment. */
  onGsoRefused?: (errno: number) => void;
  /** Called when the path MTU to a remote changes (inner MTU, L3), for logging. */
  onPathMtu?: (remote: string, mtu: number) => void;
}

/** Bytes after the receive slots for frames coalesced from them. */
const COALESCE_SCRATCH = 1024 * 1024;

/** Largest frame the TAP hands over with TSO on, behind its virtio_net_hdr. */
const TSO_FRAME_MAX = 65_536 + VNET_HDR_LEN;

export class Engine {
  private readonly networks = new Map<number, Network>();
  private readonly clock: Clock;
  private readonly remotes: RemoteTable;
  private readonly pathMtus: PathMtus;
  private readonly reports: IoErrorReports;
  private readonly tx: Tx;
  private readonly rx: Rx;
  readonly slotSize: number;

  constructor(options: EngineOptions) {
    this.clock = options.clock;
    this.remotes = options.remotes;
    this.pathMtus = new PathMtus(options.remotes, options.socket, options.onPathMtu);
    this.reports = new IoErrorReports(options.onIoError);
    const slotSize = roundUp(HEADROOM + VXLAN_HEADER_LEN + options.maxFrameSize, 256);
    // With TAP offloads a read may return a 64 KiB TCP segment.
    const tapSlotSize = options.segmenter ? Math.max(slotSize, roundUp(HEADROOM + TSO_FRAME_MAX, 256)) : slotSize;
    // The scratch area takes the fragments of one frame, each with headroom and header copies.
    const fromTaps = new Slab(options.batchSize, tapSlotSize, HEADROOM, 2 * slotSize + 16 * 256);
    // With UDP_GRO a slot takes a run of datagrams of up to 64 KiB; with offloads the scratch
    // area after the slots takes the frames coalesced from them.
    const fromSocket = options.socketGro
      ? new Slab(Math.max(8, options.batchSize >> 1), roundUp(HEADROOM + 65_536, 256), HEADROOM, COALESCE_SCRATCH, true)
      : new Slab(options.batchSize, slotSize, HEADROOM, options.segmenter ? COALESCE_SCRATCH : 0);
    this.slotSize = fromTaps.slotSize;
    this.tx = new Tx({
      socket: options.socket,
      remotes: options.remotes,
      pathMtus: this.pathMtus,
      reports: this.reports,
      networks: this.networks,
      slab: fromTaps,
      maxFrameSize: options.maxFrameSize,
      dontFragment: options.dontFragment ?? false,
      segmenter: options.segmenter,
      onGsoRefused: options.onGsoRefused,
    });
    this.rx = new Rx({
      socket: options.socket,
      remotes: options.remotes,
      reports: this.reports,
      networks: this.networks,
      slab: fromSocket,
      maxFrameSize: options.maxFrameSize,
      writeQueueCapacity: options.socketGro ? 1024 : options.batchSize,
      coalescer: options.segmenter ? new TcpCoalescer(options.segmenter.tcpChecksumValid) : undefined,
      learnRemotes: options.learnRemotes,
    });
  }

  /** Datagrams dropped before they could be tied to a VNI, and datagrams received. */
  get counters(): EngineCounters {
    return this.rx.counters;
  }

  /** Accept datagrams from non-peers and learn them; may change at runtime. */
  get learnRemotes(): boolean {
    return this.rx.learnRemotes;
  }

  set learnRemotes(on: boolean) {
    this.rx.learnRemotes = on;
  }

  addNetwork(network: Network): void {
    if (this.networks.has(network.vni)) throw new Error(`VNI ${network.vni} is already served`);
    this.networks.set(network.vni, network);
    this.rx.addNetwork(network);
  }

  removeNetwork(vni: number): void {
    const network = this.networks.get(vni);
    if (!network) return;
    this.networks.delete(vni);
    this.rx.removeNetwork(network);
  }

  network(vni: number): Network | undefined {
    return this.networks.get(vni);
  }

  allNetworks(): Network[] {
    return [...this.networks.values()];
  }

  /** Ages out learned FDB entries and learned remotes of every network. Call every few seconds. */
  housekeep(): void {
    const now = this.clock.now();
    for (const network of this.networks.values()) {
      network.counters.fdbAgedOut += network.fdb.ageOut();
      network.counters.remotesAgedOut += network.learnedRemotes.expire(now, network.fdb.ageingMs, network.fdb, this.remotes);
    }
    forgetUnusedLearned(this.remotes, this.networks.values());
    if (this.pathMtus.anyLimited) this.pathMtus.recheck();
  }

  /** Frames waiting on a network's TAP to the overlay (call when the TAP is readable). */
  drainTap(network: Network): void {
    this.tx.drainTap(network);
  }

  /** Datagrams waiting on the socket to the networks' TAPs (call when the socket is readable). */
  drainSocket(): void {
    this.rx.drainSocket();
  }

  /** Lets failures of one kind on a VNI be reported again, once the daemon saw them stop. */
  rearmIoErrorReports(what: IoErrorKind, vni: number): void {
    this.reports.rearm(what, vni);
  }
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}
