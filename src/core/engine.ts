// The forwarding engine: RFC 7348 encapsulation and decapsulation between the
// networks' TAPs and the shared UDP socket. It does no I/O of its own beyond
// the batched calls on the ports it is given, so it runs the same over the
// native devices and over in-memory fakes.
//
// Steady state allocates nothing: frames live in two preallocated slabs with
// headroom in front of every slot, so the VXLAN header is written in place.
//
// With TAP offloads (offload.ts) a frame from the TAP may be a 64 KiB TCP
// segment: it is cut to the overlay MTU by the Segmenter and sent as UDP GSO
// trains (encapsulateOffloaded). Received runs of datagrams (UDP GRO) are
// split here, and TCP segments of one flow are merged again before they go to
// the TAP (coalesce.ts).
//
// A frame too big for the path to its destination takes one branch off the
// hot path (tooBig): an ICMP/ICMPv6 "too big" answer into the TAP, inner IPv4
// fragmentation, or a counted drop (see pmtu.ts).

import { constants } from 'node:os';
import { ADDR_RECORD_LEN } from './address';
import type { Clock } from './clock';
import { EngineCounters } from './counters';
import { ETH_HEADER_LEN, ETH_SRC_OFFSET, isValidSourceMac, macHigh, macLow } from './ethernet';
import { LEARN_MOVE_LIMITED, LEARN_MOVE_REFUSED, LEARN_MOVED, LEARN_NEW, LEARN_TABLE_FULL, NO_REMOTE } from './fdb';
import { forgetUnusedLearned } from './learned-remotes';
import { egressRemote } from './forward';
import type { Network } from './network';
import {
  TOO_BIG_CARRY,
  TOO_BIG_FRAGMENT,
  TOO_BIG_ICMP4,
  TOO_BIG_ICMP6,
  TOO_BIG_REPLY_MAX,
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
import { FrameOut, GsoQueue, SendQueue, Slab, WriteQueue } from './batches';
import { TcpCoalescer } from './coalesce';
import { PathMtus } from './path-mtu';
import type { RemoteTable } from './remotes';
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
  private readonly pathMtus: PathMtus;
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
    this.pathMtus = new PathMtus(options.remotes, options.socket, options.onPathMtu);
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

  /** Ages out learned FDB entries and learned remotes of every network. Call every few seconds. */
  housekeep(): void {
    const now = this.options.clock.now();
    for (const network of this.networks.values()) {
      network.counters.fdbAgedOut += network.fdb.ageOut();
      network.counters.remotesAgedOut += network.learnedRemotes.expire(now, network.fdb.ageingMs, network.fdb, this.options.remotes);
    }
    forgetUnusedLearned(this.options.remotes, this.networks.values());
    if (this.pathMtus.anyLimited) this.pathMtus.recheck();
  }

  // HOT PATH: frames from a network's TAP to the overlay.
  drainTap(network: Network): void {
    const slab = this.fromTaps;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP; round++) {
      const n = network.port.readFrames(slab.bytes, slab.slotSize, HEADROOM, slab.slots, slab.lengths);
      const offloaded = network.port.vnetHeader === true;
      const observer = network.tapObserver;
      for (let i = 0; i < n; i++) {
        const start = i * slab.slotSize + HEADROOM;
        // The control plane's look at the frame (local MACs, ARP/ND answered here): see arp-suppress.ts.
        if (observer !== undefined && observer.fromTap(slab.bytes, offloaded ? start + VNET_HDR_LEN : start, offloaded ? slab.lengths[i] - VNET_HDR_LEN : slab.lengths[i])) continue;
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
    const remoteId = egressRemote(bytes, frame, network.fdb);
    const packet = length - ETH_HEADER_LEN;
    if (packet > network.overlayMtu || (this.pathMtus.anyLimited && packet > this.pathMtus.of(network, remoteId))) {
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
    const remoteId = egressRemote(bytes, frame, network.fdb);
    // Segments go out in their own send: whatever was read before them goes first.
    this.flushSends();
    const gso = this.gso;
    const status = segmenter.segmentTcp(
      bytes,
      frame,
      frameLength,
      vnetGsoSize(bytes, start),
      this.pathMtus.of(network, remoteId),
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
      if (errno === EMSGSIZE || (errno === EINVAL && this.pathMtus.exceedsKernelPath(gso.remoteIds[k], packet))) {
        network.counters.drops.path_mtu += gso.segments[k];
        this.pathMtus.lower(gso.remoteIds[k], packet);
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
    const mtu = this.pathMtus.of(network, remoteId);
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
        this.pathMtus.lower(queue.remoteIds[k], queue.lengths[k] - VXLAN_HEADER_LEN - ETH_HEADER_LEN);
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
    const fromPeer = remoteId !== NO_REMOTE && network.isPeer(remoteId);
    if (!fromPeer) {
      if (!this.learnRemotes) {
        counters.drops.unknown_sender++;
        return;
      }
      // Bounded per VNI (--max-remotes); NO_REMOTE: counted as remotes_full.
      remoteId = network.learnedRemotes.admit(remoteId, this.options.remotes, slab.records, record, counters);
      if (remoteId === NO_REMOTE) return;
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
    // A stranger never takes a MAC from a configured peer or a static entry (LEARN_MOVE_REFUSED).
    const learned = network.fdb.learn(macHigh(bytes, source), macLow(bytes, source), remoteId, fromPeer);
    if (learned === LEARN_NEW) counters.fdbLearned++;
    else if (learned === LEARN_MOVED) counters.fdbMoved++;
    else if (learned === LEARN_TABLE_FULL) counters.drops.fdb_full++;
    else if (learned === LEARN_MOVE_LIMITED) counters.fdbMoveLimited++;
    else if (learned === LEARN_MOVE_REFUSED) {
      counters.drops.move_refused++;
      return;
    }

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
