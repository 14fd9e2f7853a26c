// The forwarding engine: RFC 7348 encapsulation and decapsulation between the
// networks' TAPs and the shared UDP socket. It does no I/O of its own beyond
// the batched calls on the ports it is given, so it runs the same over the
// native devices and over in-memory fakes.
//
// Steady state allocates nothing: frames live in two preallocated slabs with
// headroom in front of every slot, so the VXLAN header is written in place.
//
// A frame too big for the path to its destination takes one branch off the
// hot path (tooBig): an ICMP/ICMPv6 "too big" answer into the TAP, inner IPv4
// fragmentation, or a counted drop (see pmtu.ts).

import { constants } from 'node:os';
import { ADDR_RECORD_LEN, isMappedIpv4 } from './address';
import type { Clock } from './clock';
import { EngineCounters } from './counters';
import { ETH_HEADER_LEN, ETH_SRC_OFFSET, isGroupMac, isValidSourceMac, macHigh, macLow } from './ethernet';
import { LEARN_MOVED, LEARN_NEW, LEARN_TABLE_FULL, NO_REMOTE } from './fdb';
import type { Network } from './network';
import {
  IPV4_MIN_MTU,
  TOO_BIG_CARRY,
  TOO_BIG_FRAGMENT,
  TOO_BIG_ICMP4,
  TOO_BIG_ICMP6,
  TOO_BIG_REPLY_MAX,
  VXLAN_OVERHEAD_IPV4,
  VXLAN_OVERHEAD_IPV6,
  buildFragmentationNeeded,
  buildPacketTooBig,
  fragmentIpv4,
  isTruncated,
  oversizeAction,
  wantsOuterDf,
} from './pmtu';
import {
  GSO_NONE,
  GSO_TCPV4,
  GSO_TCPV6,
  MAX_GSO_BYTES,
  MAX_GSO_SEGMENTS,
  VNET_F_NEEDS_CSUM,
  VNET_HDR_LEN,
  vnetCsumOffset,
  vnetCsumStart,
  vnetGsoSize,
  vnetGsoType,
  type Segmenter,
} from './offload';
import type { DatagramPort } from './ports';
import { TcpCoalescer, type WriteList } from './coalesce';
import { NO_PATH_LIMIT, type Remote, type RemoteTable } from './remotes';
import { VXLAN_HEADER_LEN, readVxlanVni, writeVxlanHeader } from './vxlan';

/** Bytes kept free in front of every slot; room for the VXLAN header and more. */
export const HEADROOM = 64;
/** Batches drained per wake-up before yielding to the other direction. */
const MAX_ROUNDS_PER_WAKEUP = 8;
/** Most fragments one frame is split into; a frame that needs more is dropped as oversize. */
const MAX_FRAGMENTS = 64;
const { EMSGSIZE, EIO, EINVAL } = constants.errno;

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
  onIoError?: (what: 'socket_send' | 'tap_write', errno: number, vni: number) => void;
  /** Splits TSO frames and completes checksums; needed when a network's TAP has offloads on. */
  segmenter?: Segmenter;
  /**
   * The socket hands over runs of datagrams from one sender as one buffer (UDP_GRO): receive slots
   * are sized for 64 KiB and each run is split here.
   */
  socketGro?: boolean;
  /** Called once if the kernel refuses UDP GSO; trains are then sent datagram by datagram. */
  onGsoRefused?: (errno: number) => void;
  /** Called when the path MTU to a remote changes (inner MTU, L3), for logging. */
  onPathMtu?: (remote: string, mtu: number) => void;
}

/** A batch of frames or datagrams in one slab, slot i at i*slotSize + HEADROOM. */
class Slab {
  readonly bytes: Buffer;
  readonly lengths: Uint32Array;
  readonly records: Buffer;
  constructor(
    readonly slots: number,
    readonly slotSize: number,
    /** Bytes after the last slot, for frames the engine makes itself (fragments). */
    readonly scratch = 0,
  ) {
    this.bytes = Buffer.alloc(slots * slotSize + scratch);
    this.lengths = new Uint32Array(slots);
    this.records = Buffer.alloc(slots * ADDR_RECORD_LEN);
  }
}

/** Datagrams waiting for one sendBatch call. */
class SendQueue {
  count = 0;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly records: Buffer;
  readonly results: Int32Array;
  readonly remoteIds: Int32Array;
  readonly networks: (Network | undefined)[];
  /** Outer DF per datagram, used with dontFragment 'inherit'. */
  readonly dontFragment: Uint8Array;
  constructor(readonly capacity: number) {
    this.dontFragment = new Uint8Array(capacity);
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.records = Buffer.alloc(capacity * ADDR_RECORD_LEN);
    this.results = new Int32Array(capacity);
    this.remoteIds = new Int32Array(capacity);
    this.networks = new Array(capacity).fill(undefined);
  }
}

/** Frames waiting for one writeFrames call on a network's TAP. */
class WriteQueue implements WriteList {
  count = 0;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly results: Int32Array;
  /** Received frames an entry carries (more than one once coalesced). */
  readonly frames: Uint32Array;
  /** Received inner bytes an entry carries. */
  readonly innerBytes: Uint32Array;
  /** With offloads: 1 if an entry needs an empty virtio_net_hdr in front, 0 if it has its own. */
  readonly prependHeader: Uint8Array;
  /** Listed in Engine.pendingWrites. */
  pending = false;
  constructor(readonly capacity: number) {
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.results = new Int32Array(capacity);
    this.frames = new Uint32Array(capacity);
    this.innerBytes = new Uint32Array(capacity);
    this.prependHeader = new Uint8Array(capacity);
  }
}

/** Frames the engine makes and writes to a TAP itself (ICMP answers), slot i at i*slotSize. */
class FrameOut {
  readonly bytes: Buffer;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly results: Int32Array;
  constructor(slots: number, slotSize: number) {
    this.bytes = Buffer.alloc(slots * slotSize);
    this.offsets = new Uint32Array(slots);
    this.lengths = new Uint32Array(slots);
    this.results = new Int32Array(slots);
    for (let i = 0; i < slots; i++) this.offsets[i] = i * slotSize;
  }
}

/** Trains of segments of one TSO frame, each sent with one UDP GSO call. */
class GsoQueue extends SendQueue {
  /** Segments made from the frame, back to back: room for 64 KiB cut into small segments. */
  readonly bytes = Buffer.alloc(256 * 1024);
  readonly segmentSizes: Uint32Array;
  readonly segments: Uint32Array;
  /** [count, stride, lastLength] of the last segmentTcp call. */
  readonly shape = new Uint32Array(3);
  constructor(capacity: number) {
    super(capacity);
    this.segmentSizes = new Uint32Array(capacity);
    this.segments = new Uint32Array(capacity);
  }
}

/** Bytes after the receive slots for frames coalesced from them. */
const COALESCE_SCRATCH = 1024 * 1024;

/** Largest frame the TAP hands over with TSO on, behind its virtio_net_hdr. */
const TSO_FRAME_MAX = 65_536 + VNET_HDR_LEN;

export class Engine {
  readonly counters = new EngineCounters();
  private readonly networks = new Map<number, Network>();
  private readonly writeQueues = new Map<Network, WriteQueue>();
  /** Networks with frames queued for their TAP during the current receive batch. */
  private readonly pendingWrites: Network[] = [];
  private readonly fromTaps: Slab;
  private readonly fromSocket: Slab;
  private readonly sendQueue: SendQueue;
  private readonly reportedErrnos = new Set<string>();
  /** Accept datagrams from non-peers and learn them; may change at runtime. */
  learnRemotes: boolean;
  private readonly inheritDf: boolean;
  /** Remotes whose Remote.mtu is set; while 0 the path check is one comparison. */
  private limitedRemotes = 0;
  /** ICMP answers are built here and written to the TAP one at a time. */
  private readonly reply = new FrameOut(1, TOO_BIG_REPLY_MAX);
  private readonly fragmentOffsets = new Uint32Array(MAX_FRAGMENTS);
  private readonly fragmentLengths = new Uint32Array(MAX_FRAGMENTS);
  private readonly gso = new GsoQueue(256);
  /** Cleared for good if the kernel refuses UDP GSO. */
  private gsoEnabled = true;
  private readonly coalescer: TcpCoalescer | undefined;
  /** Size of the datagrams in each received run (UDP_GRO), 0 for a single datagram. */
  private readonly rxSegments: Uint32Array;
  private readonly writeQueueCapacity: number;

  constructor(private readonly options: EngineOptions) {
    this.learnRemotes = options.learnRemotes;
    this.inheritDf = options.dontFragment === 'inherit';
    const slotSize = roundUp(HEADROOM + VXLAN_HEADER_LEN + options.maxFrameSize, 256);
    // With TAP offloads a read may return a 64 KiB TCP segment.
    const tapSlotSize = options.segmenter ? Math.max(slotSize, roundUp(HEADROOM + TSO_FRAME_MAX, 256)) : slotSize;
    // Room for the fragments of one frame, each with headroom and header copies.
    this.fromTaps = new Slab(options.batchSize, tapSlotSize, 2 * slotSize + 16 * 256);
    // With UDP_GRO a slot takes a run of datagrams of up to 64 KiB; with offloads the scratch
    // area after the slots takes the frames coalesced from them.
    this.fromSocket = options.socketGro
      ? new Slab(Math.max(8, options.batchSize >> 1), roundUp(HEADROOM + 65_536, 256), COALESCE_SCRATCH)
      : new Slab(options.batchSize, slotSize, options.segmenter ? COALESCE_SCRATCH : 0);
    this.rxSegments = new Uint32Array(this.fromSocket.slots);
    this.writeQueueCapacity = options.socketGro ? 1024 : options.batchSize;
    this.coalescer = options.segmenter ? new TcpCoalescer(options.segmenter.tcpChecksumValid) : undefined;
    this.sendQueue = new SendQueue(Math.max(options.batchSize * 4, 64));
  }

  get slotSize(): number {
    return this.fromTaps.slotSize;
  }

  addNetwork(network: Network): void {
    if (this.networks.has(network.vni)) throw new Error(`VNI ${network.vni} is already served`);
    this.networks.set(network.vni, network);
    this.writeQueues.set(network, new WriteQueue(this.writeQueueCapacity));
  }

  removeNetwork(vni: number): void {
    const network = this.networks.get(vni);
    if (!network) return;
    this.networks.delete(vni);
    this.writeQueues.delete(network);
  }

  network(vni: number): Network | undefined {
    return this.networks.get(vni);
  }

  allNetworks(): Network[] {
    return [...this.networks.values()];
  }

  /** Ages out learned FDB entries of every network. Call every few seconds. */
  housekeep(): void {
    for (const network of this.networks.values()) {
      network.counters.fdbAgedOut += network.fdb.ageOut();
    }
    if (this.limitedRemotes !== 0) this.recheckPathMtus();
  }

  // HOT PATH: frames from a network's TAP to the overlay.
  drainTap(network: Network): void {
    const slab = this.fromTaps;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP; round++) {
      const n = network.port.readFrames(slab.bytes, slab.slotSize, HEADROOM, slab.slots, slab.lengths);
      const offloaded = network.port.vnetHeader === true;
      for (let i = 0; i < n; i++) {
        const start = i * slab.slotSize + HEADROOM;
        if (offloaded) this.encapsulateOffloaded(network, start, slab.lengths[i]);
        else this.encapsulate(network, start, slab.lengths[i]);
      }
      this.flushSends();
      if (n < slab.slots) return;
    }
  }

  // HOT PATH: datagrams from the overlay to the networks' TAPs.
  drainSocket(): void {
    const slab = this.fromSocket;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP; round++) {
      const n = this.options.socket.recvBatch(
        slab.bytes,
        slab.slotSize,
        HEADROOM,
        slab.slots,
        slab.lengths,
        slab.records,
        this.options.socketGro ? this.rxSegments : undefined,
      );
      for (let i = 0; i < n; i++) {
        const start = i * slab.slotSize + HEADROOM;
        const length = slab.lengths[i];
        const segment = this.options.socketGro ? this.rxSegments[i] : 0;
        if (segment === 0 || segment >= length) {
          this.counters.rxDatagrams++;
          this.decapsulate(start, length, i * ADDR_RECORD_LEN);
          continue;
        }
        // A run of datagrams from one sender, back to back: each is a datagram of its own.
        for (let offset = 0; offset < length; offset += segment) {
          this.counters.rxDatagrams++;
          this.decapsulate(start + offset, Math.min(segment, length - offset), i * ADDR_RECORD_LEN);
        }
      }
      this.flushWrites();
      if (n < slab.slots) return;
    }
  }

  // HOT PATH
  private encapsulate(network: Network, frame: number, length: number): void {
    const bytes = this.fromTaps.bytes;
    const counters = network.counters;
    if (length < ETH_HEADER_LEN) {
      counters.drops.runt++;
      return;
    }
    if (length > this.options.maxFrameSize) {
      counters.drops.oversize++;
      return;
    }
    const remoteId = isGroupMac(bytes, frame) ? NO_REMOTE : network.fdb.lookup(macHigh(bytes, frame), macLow(bytes, frame));
    const packet = length - ETH_HEADER_LEN;
    if (packet > network.overlayMtu || (this.limitedRemotes !== 0 && packet > this.pathMtu(network, remoteId))) {
      this.tooBig(network, frame, length, remoteId);
      return;
    }
    this.forward(network, frame, length, remoteId, this.inheritDf && wantsOuterDf(bytes, frame, length) ? 1 : 0);
  }

  // HOT PATH (TAP offloads on): the frame at start is behind a virtio_net_hdr.
  private encapsulateOffloaded(network: Network, start: number, length: number): void {
    const bytes = this.fromTaps.bytes;
    const counters = network.counters;
    if (length < VNET_HDR_LEN + ETH_HEADER_LEN) {
      counters.drops.runt++;
      return;
    }
    const frame = start + VNET_HDR_LEN;
    const frameLength = length - VNET_HDR_LEN;
    const gsoType = vnetGsoType(bytes, start);
    const segmenter = this.options.segmenter as Segmenter;
    if (gsoType === GSO_NONE) {
      if (
        (bytes[start] & VNET_F_NEEDS_CSUM) !== 0 &&
        !segmenter.finishChecksum(bytes, frame, frameLength, vnetCsumStart(bytes, start), vnetCsumOffset(bytes, start))
      ) {
        counters.drops.bad_frame++;
        return;
      }
      this.encapsulate(network, frame, frameLength);
      return;
    }
    if (gsoType !== GSO_TCPV4 && gsoType !== GSO_TCPV6) {
      counters.drops.bad_frame++;
      return;
    }
    const remoteId = isGroupMac(bytes, frame) ? NO_REMOTE : network.fdb.lookup(macHigh(bytes, frame), macLow(bytes, frame));
    // Segments go out in their own send: whatever was read before them goes first.
    this.flushSends();
    const gso = this.gso;
    const status = segmenter.segmentTcp(
      bytes,
      frame,
      frameLength,
      vnetGsoSize(bytes, start),
      this.pathMtu(network, remoteId),
      network.vxlanHeader,
      gso.bytes,
      0,
      gso.bytes.length,
      gso.shape,
    );
    if (status !== 0) {
      if (status === -2) counters.drops.oversize++;
      else counters.drops.bad_frame++;
      return;
    }
    const segments = gso.shape[0];
    const stride = gso.shape[1];
    const lastLength = gso.shape[2];
    if (remoteId === NO_REMOTE && !this.mayFlood(network, segments)) return;
    counters.txFrames += segments;
    counters.txBytes += (segments - 1) * (stride - VXLAN_HEADER_LEN) + lastLength - VXLAN_HEADER_LEN;
    const dontFragment = this.inheritDf && wantsOuterDf(bytes, frame, frameLength) ? 1 : 0;
    if (remoteId !== NO_REMOTE) {
      this.queueTrains(network, remoteId, segments, stride, lastLength, dontFragment);
    } else if (network.peers.length === 0) {
      counters.drops.no_peers++;
    } else {
      counters.floodedFrames++;
      const peers = network.peers;
      for (let p = 0; p < peers.length; p++) this.queueTrains(network, peers[p], segments, stride, lastLength, dontFragment);
    }
    this.flushGso();
  }

  /** Queues the segments in gso.bytes to one remote, as trains of up to MAX_GSO_SEGMENTS. */
  private queueTrains(network: Network, remoteId: number, segments: number, stride: number, lastLength: number, dontFragment: number): void {
    const gso = this.gso;
    const remote = this.options.remotes.get(remoteId);
    if (remote === undefined) return;
    // A train is one UDP datagram to the kernel, so it must stay within 64 KiB.
    const perTrain = this.gsoEnabled ? Math.min(MAX_GSO_SEGMENTS, Math.floor(MAX_GSO_BYTES / stride)) : 1;
    for (let first = 0; first < segments; first += perTrain) {
      const n = Math.min(perTrain, segments - first);
      if (gso.count === gso.capacity) this.flushGso();
      const k = gso.count++;
      gso.offsets[k] = first * stride;
      gso.lengths[k] = (n - 1) * stride + (first + n === segments ? lastLength : stride);
      gso.segmentSizes[k] = n > 1 ? stride : 0;
      gso.segments[k] = n;
      gso.dontFragment[k] = dontFragment;
      gso.remoteIds[k] = remoteId;
      gso.networks[k] = network;
      remote.record.copy(gso.records, k * ADDR_RECORD_LEN, 0, ADDR_RECORD_LEN);
    }
  }

  private flushGso(): void {
    const gso = this.gso;
    if (gso.count === 0) return;
    const dontFragment = this.inheritDf ? gso.dontFragment : undefined;
    this.options.socket.sendBatch(gso.bytes, gso.offsets, gso.lengths, gso.records, gso.count, gso.results, dontFragment, gso.segmentSizes);
    for (let k = 0; k < gso.count; k++) {
      const network = gso.networks[k] as Network;
      gso.networks[k] = undefined;
      const errno = gso.results[k];
      if (errno === 0) {
        network.counters.txDatagrams += gso.segments[k];
        const remote = this.options.remotes.get(gso.remoteIds[k]);
        if (remote !== undefined) {
          remote.counters.txDatagrams += gso.segments[k];
          remote.counters.txBytes += gso.lengths[k];
        }
        continue;
      }
      const segment = gso.segmentSizes[k] > 0 ? gso.segmentSizes[k] : gso.lengths[k];
      const packet = segment - VXLAN_HEADER_LEN - ETH_HEADER_LEN;
      // EMSGSIZE, or EINVAL for a GSO segment larger than the path: the kernel knows a smaller
      // path MTU (as in flushSends); learn it, and the next segments fit.
      if (errno === EMSGSIZE || (errno === EINVAL && this.exceedsKernelPath(gso.remoteIds[k], packet))) {
        network.counters.drops.path_mtu += gso.segments[k];
        this.lowerPathMtu(gso.remoteIds[k], packet);
        continue;
      }
      network.counters.drops.socket_send += gso.segments[k];
      if (gso.segmentSizes[k] > 0 && (errno === EIO || errno === EINVAL) && this.gsoEnabled) {
        // The kernel (or the route's device) does not do UDP GSO: send datagram by datagram from now on.
        this.gsoEnabled = false;
        this.options.onGsoRefused?.(errno);
      } else {
        this.reportIoError('socket_send', errno, network.vni);
      }
    }
    gso.count = 0;
  }

  // HOT PATH: a frame in fromTaps to its remote, or to every peer if NO_REMOTE.
  private forward(network: Network, frame: number, length: number, remoteId: number, dontFragment: number): void {
    if (remoteId === NO_REMOTE && !this.mayFlood(network, 1)) return;
    const counters = network.counters;
    const header = frame - VXLAN_HEADER_LEN;
    writeVxlanHeader(this.fromTaps.bytes, header, network.vni);
    const datagramLength = length + VXLAN_HEADER_LEN;
    counters.txFrames++;
    counters.txBytes += length;
    if (remoteId !== NO_REMOTE) {
      this.queueSend(network, header, datagramLength, remoteId, dontFragment);
      return;
    }
    // Broadcast, multicast or unknown unicast: one copy to every peer.
    const peers = network.peers;
    if (peers.length === 0) {
      counters.drops.no_peers++;
      return;
    }
    counters.floodedFrames++;
    for (let p = 0; p < peers.length; p++) this.queueSend(network, header, datagramLength, peers[p], dontFragment);
  }

  /**
   * A frame larger than the path to its destination: answered with ICMP
   * "too big", split into fragments, carried for the outer IP layer to
   * fragment, or dropped and counted. Never lost without a trace.
   */
  private tooBig(network: Network, frame: number, length: number, remoteId: number): void {
    const bytes = this.fromTaps.bytes;
    const counters = network.counters;
    const mtu = this.pathMtu(network, remoteId);
    switch (oversizeAction(bytes, frame, length, mtu)) {
      case TOO_BIG_ICMP4:
        this.answer(network, buildFragmentationNeeded(bytes, frame, length, mtu, this.reply.bytes, 0));
        return;
      case TOO_BIG_ICMP6:
        this.answer(network, buildPacketTooBig(bytes, frame, length, mtu, this.reply.bytes, 0));
        return;
      case TOO_BIG_FRAGMENT: {
        // Fragments live in the slab's scratch area: send those of an earlier frame first.
        this.flushSends();
        const slab = this.fromTaps;
        const scratch = slab.slots * slab.slotSize;
        const offsets = this.fragmentOffsets;
        const lengths = this.fragmentLengths;
        const n = fragmentIpv4(bytes, frame, length, mtu, bytes, scratch, bytes.length, HEADROOM, offsets, lengths);
        if (n === 0) break;
        counters.fragmentedFrames++;
        for (let i = 0; i < n; i++) this.forward(network, offsets[i], lengths[i], remoteId, 0);
        return;
      }
      case TOO_BIG_CARRY:
        // IPv6 within 1280 bytes: the outer IPv4 packet must be fragmented, so DF clear.
        if (this.options.dontFragment === true) break;
        this.forward(network, frame, length, remoteId, 0);
        return;
    }
    counters.drops.oversize++;
  }

  /** Writes the ICMP answer built in this.reply into the network's TAP. */
  private answer(network: Network, length: number): void {
    const counters = network.counters;
    if (length === 0) {
      counters.drops.oversize++;
      return;
    }
    const reply = this.reply;
    reply.lengths[0] = length;
    network.port.writeFrames(reply.bytes, reply.offsets, reply.lengths, 1, reply.results);
    const errno = reply.results[0];
    if (errno !== 0) {
      counters.drops.tap_write++;
      this.reportIoError('tap_write', errno, network.vni);
      return;
    }
    counters.icmpTooBig++;
  }

  /** Largest inner packet that fits the path to remoteId, or to every peer if NO_REMOTE. */
  private pathMtu(network: Network, remoteId: number): number {
    let mtu = network.overlayMtu;
    if (this.limitedRemotes === 0) return mtu;
    const remotes = this.options.remotes;
    if (remoteId !== NO_REMOTE) {
      const remote = remotes.get(remoteId);
      return remote !== undefined && remote.mtu < mtu ? remote.mtu : mtu;
    }
    const peers = network.peers;
    for (let p = 0; p < peers.length; p++) {
      const remote = remotes.get(peers[p]);
      if (remote !== undefined && remote.mtu < mtu) mtu = remote.mtu;
    }
    return mtu;
  }

  /**
   * A send to remoteId failed with EMSGSIZE: the kernel knows a smaller path
   * MTU (outer DF set, and an ICMP "too big" came back from the underlay, or
   * the route's MTU is smaller). Ask it, and lower the remote's MTU so that
   * frames that large get an answer or are fragmented from now on.
   */
  private lowerPathMtu(remoteId: number, packet: number): void {
    const remote = this.options.remotes.get(remoteId);
    if (remote === undefined || packet > remote.mtu) return; // already known
    let mtu = this.kernelPathMtu(remote);
    // The kernel's answer should explain the failure; if it cannot, go below what failed.
    if (mtu <= 0 || mtu >= packet) mtu = packet - 8;
    mtu = Math.max(mtu, IPV4_MIN_MTU);
    if (remote.mtu === NO_PATH_LIMIT) this.limitedRemotes++;
    remote.mtu = mtu;
    this.options.onPathMtu?.(remote.address, mtu);
  }

  /** Path MTUs come back up when the kernel's do (its learned values expire after 10 minutes). */
  private recheckPathMtus(): void {
    let limited = 0;
    for (const remote of this.options.remotes.all()) {
      if (remote.mtu === NO_PATH_LIMIT) continue;
      const mtu = this.kernelPathMtu(remote);
      if (mtu > remote.mtu) {
        remote.mtu = mtu;
        this.options.onPathMtu?.(remote.address, mtu);
      }
      limited++;
    }
    this.limitedRemotes = limited;
  }

  private exceedsKernelPath(remoteId: number, packet: number): boolean {
    const remote = this.options.remotes.get(remoteId);
    if (remote === undefined) return false;
    const mtu = this.kernelPathMtu(remote);
    return mtu > 0 && packet > mtu;
  }

  /** The kernel's path MTU to the remote as an inner packet size; 0 if unknown. */
  private kernelPathMtu(remote: Remote): number {
    const socket = this.options.socket;
    const outer = socket.pathMtu === undefined ? 0 : socket.pathMtu(remote.record, 0);
    if (outer <= 0) return 0;
    return outer - (isMappedIpv4(remote.record, 0) ? VXLAN_OVERHEAD_IPV4 : VXLAN_OVERHEAD_IPV6);
  }

  private queueSend(network: Network, offset: number, length: number, remoteId: number, dontFragment: number): void {
    const queue = this.sendQueue;
    if (queue.count === queue.capacity) this.flushSends();
    const remote = this.options.remotes.get(remoteId);
    if (remote === undefined) return;
    const k = queue.count++;
    queue.dontFragment[k] = dontFragment;
    queue.offsets[k] = offset;
    queue.lengths[k] = length;
    queue.remoteIds[k] = remoteId;
    queue.networks[k] = network;
    remote.record.copy(queue.records, k * ADDR_RECORD_LEN, 0, ADDR_RECORD_LEN);
  }

  private flushSends(): void {
    const queue = this.sendQueue;
    if (queue.count === 0) return;
    this.options.socket.sendBatch(
      this.fromTaps.bytes,
      queue.offsets,
      queue.lengths,
      queue.records,
      queue.count,
      queue.results,
      this.inheritDf ? queue.dontFragment : undefined,
    );
    for (let k = 0; k < queue.count; k++) {
      const network = queue.networks[k] as Network;
      queue.networks[k] = undefined;
      const errno = queue.results[k];
      if (errno === EMSGSIZE) {
        network.counters.drops.path_mtu++;
        this.lowerPathMtu(queue.remoteIds[k], queue.lengths[k] - VXLAN_HEADER_LEN - ETH_HEADER_LEN);
        continue;
      }
      if (errno !== 0) {
        network.counters.drops.socket_send++;
        this.reportIoError('socket_send', errno, network.vni);
        continue;
      }
      network.counters.txDatagrams++;
      const remote = this.options.remotes.get(queue.remoteIds[k]);
      if (remote !== undefined) {
        remote.counters.txDatagrams++;
        remote.counters.txBytes += queue.lengths[k];
      }
    }
    queue.count = 0;
  }

  // HOT PATH
  private decapsulate(datagram: number, length: number, record: number): void {
    const slab = this.fromSocket;
    const bytes = slab.bytes;
    const vni = readVxlanVni(bytes, datagram, length);
    if (vni < 0) {
      this.counters.badHeader++;
      return;
    }
    const network = this.networks.get(vni);
    if (network === undefined) {
      this.counters.unknownVni++;
      return;
    }
    const counters = network.counters;
    // Slots may be far larger than a frame (64 KiB with UDP GRO): the frame must fit the TAP too.
    if (length > slab.slotSize - HEADROOM || length - VXLAN_HEADER_LEN > this.options.maxFrameSize) {
      counters.drops.oversize++;
      return;
    }
    let remoteId = this.options.remotes.findByRecord(slab.records, record);
    if (remoteId === NO_REMOTE || !network.isPeer(remoteId)) {
      if (!this.learnRemotes) {
        counters.drops.unknown_sender++;
        return;
      }
      if (remoteId === NO_REMOTE) remoteId = this.options.remotes.addFromRecord(slab.records, record, true).id;
    }
    const frame = datagram + VXLAN_HEADER_LEN;
    const frameLength = length - VXLAN_HEADER_LEN;
    if (frameLength < ETH_HEADER_LEN) {
      counters.drops.runt++;
      return;
    }
    if (isTruncated(bytes, frame, frameLength)) {
      counters.drops.truncated++;
      return;
    }
    const source = frame + ETH_SRC_OFFSET;
    if (!isValidSourceMac(bytes, source)) {
      counters.drops.bad_frame++;
      return;
    }
    const learned = network.fdb.learn(macHigh(bytes, source), macLow(bytes, source), remoteId);
    if (learned === LEARN_NEW) counters.fdbLearned++;
    else if (learned === LEARN_MOVED) counters.fdbMoved++;
    else if (learned === LEARN_TABLE_FULL) counters.drops.fdb_full++;

    const remote = this.options.remotes.get(remoteId);
    if (remote !== undefined) {
      remote.counters.rxDatagrams++;
      remote.counters.rxBytes += length;
    }
    const queue = this.writeQueues.get(network) as WriteQueue;
    if (queue.count === queue.capacity) this.flushNetworkWrites(network, queue);
    if (queue.count === 0 && !queue.pending) {
      queue.pending = true;
      this.pendingWrites.push(network);
    }
    const k = queue.count++;
    queue.offsets[k] = frame;
    queue.lengths[k] = frameLength;
    queue.frames[k] = 1;
    queue.innerBytes[k] = frameLength;
  }

  private flushWrites(): void {
    const pending = this.pendingWrites;
    for (let p = 0; p < pending.length; p++) {
      const network = pending[p];
      const queue = this.writeQueues.get(network) as WriteQueue;
      queue.pending = false;
      this.flushNetworkWrites(network, queue);
    }
    pending.length = 0;
  }

  private flushNetworkWrites(network: Network, queue: WriteQueue): void {
    {
      const slab = this.fromSocket;
      let count = queue.count;
      const coalesce = this.coalescer !== undefined && network.port.vnetHeader === true;
      if (coalesce) {
        const scratch = slab.slots * slab.slotSize;
        count = (this.coalescer as TcpCoalescer).coalesce(slab.bytes, queue, count, scratch, slab.bytes.length);
      }
      network.port.writeFrames(slab.bytes, queue.offsets, queue.lengths, count, queue.results, coalesce ? queue.prependHeader : undefined);
      const counters = network.counters;
      for (let k = 0; k < count; k++) {
        const errno = queue.results[k];
        if (errno === 0) {
          counters.rxFrames += queue.frames[k];
          counters.rxBytes += queue.innerBytes[k];
        } else {
          counters.drops.tap_write += queue.frames[k];
          this.reportIoError('tap_write', errno, network.vni);
        }
      }
      queue.count = 0;
    }
  }

  /**
   * The flood branch's rate limit (see rate-limit.ts): whether `frames` frames
   * may go to every peer now; if not they are counted as flood_limited. A VNI
   * without peers is left to the no_peers count.
   */
  private mayFlood(network: Network, frames: number): boolean {
    const limiter = network.floodLimiter;
    if (limiter === undefined || network.peers.length === 0 || limiter.take(frames)) return true;
    network.counters.drops.flood_limited += frames;
    return false;
  }

  /** Lets failures of one kind on a VNI be reported again, once the daemon saw them stop. */
  rearmIoErrorReports(what: 'socket_send' | 'tap_write', vni: number): void {
    const prefix = `${what}:`;
    const suffix = `:${vni}`;
    for (const key of this.reportedErrnos) if (key.startsWith(prefix) && key.endsWith(suffix)) this.reportedErrnos.delete(key);
  }

  /** Reports each (kind, errno, vni) once, so a failing link logs a line, not a flood. */
  private reportIoError(what: 'socket_send' | 'tap_write', errno: number, vni: number): void {
    if (!this.options.onIoError) return;
    const key = `${what}:${errno}:${vni}`;
    if (this.reportedErrnos.has(key)) return;
    this.reportedErrnos.add(key);
    this.options.onIoError(what, errno, vni);
  }
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}
