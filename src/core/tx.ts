// Transmit: frames from the networks' TAPs to the overlay (RFC 7348
// encapsulation). A frame is read into a slot of fromTaps with headroom in
// front, the VXLAN header is written into that headroom, and the datagram is
// queued (SendQueue) to its remote, or to every peer of the VNI (flood);
// one sendBatch per queue full or per TAP batch.
//
// With TAP offloads a frame may be a 64 KiB TCP segment: it is cut into
// trains (trains.ts) and sent from their own queue. A frame too big for the
// path goes to the too-big branch (too-big.ts).
//
// When the socket buffer is full (EAGAIN), what was not sent is copied into
// the backlog, reading from the TAPs pauses, and the socket's writability
// (through the event loop) resumes both: backpressure without blocking.

import { constants } from 'node:os';
import { Backlog } from './backlog';
import { ETH_HEADER_LEN, VXLAN_HEADER_LEN } from './protocol';
import { NO_REMOTE } from './fdb';
import { egressRemote } from './forward';
import type { Network } from './network';
import {
  GSO_NONE,
  GSO_TCPV4,
  GSO_TCPV6,
  VNET_F_NEEDS_CSUM,
  VNET_HDR_LEN,
  vnetCsumOffset,
  vnetCsumStart,
  vnetGsoType,
  type Segmenter,
} from './offload';
import { SEND_GSO_DISABLED, type DatagramPort } from './ports';
import { SendQueue, Slab, TrainQueue } from './batches';
import type { IoErrorReports } from './io-errors';
import type { PathMtus } from './path-mtu';
import type { RemoteTable } from './remotes';
import { TooBig, wantsOuterDf, type Forwarder } from './too-big';
import { SEGMENT_NO_ROOM, queueTrains, segmentFrame } from './trains';
import { writeVxlanHeader } from './vxlan';

const { EMSGSIZE, EAGAIN } = constants.errno;
/** Batches drained per wake-up before yielding to the other direction. */
const MAX_ROUNDS_PER_WAKEUP = 8;

export interface TxOptions {
  socket: DatagramPort;
  remotes: RemoteTable;
  pathMtus: PathMtus;
  reports: IoErrorReports;
  /** The networks served, to pause and resume their TAPs. */
  networks: ReadonlyMap<number, Network>;
  slab: Slab;
  maxFrameSize: number;
  dontFragment: boolean | 'inherit';
  segmenter?: Segmenter;
  onGsoRefused?: (errno: number) => void;
}

export class Tx implements Forwarder {
  private readonly fromTaps: Slab;
  /** Datagrams pointing into fromTaps. */
  private readonly sends: SendQueue;
  /** Trains of the TSO frame being sent, in their own bytes. */
  private readonly trains = new TrainQueue(256);
  /** Datagrams that met a full socket buffer, with copies of their bytes. */
  private readonly backlog = new Backlog();
  /** Waiting for the socket to become writable: the TAPs are not read meanwhile. */
  private blocked = false;
  private readonly inheritDf: boolean;
  private readonly tooBig: TooBig;
  private readonly onWritable = (): void => this.resume();
  private readonly accountFor = (queue: SendQueue, k: number): void => this.account(queue, k);

  constructor(private readonly options: TxOptions) {
    this.fromTaps = options.slab;
    this.inheritDf = options.dontFragment === 'inherit';
    this.sends = new SendQueue(Math.max(options.slab.slots * 4, 64), options.slab.bytes);
    this.sends.perDatagramDf = this.inheritDf;
    this.trains.perDatagramDf = this.inheritDf;
    this.backlog.queue.perDatagramDf = this.inheritDf;
    this.tooBig = new TooBig(options.pathMtus, options.reports, options.dontFragment === true, this);
  }

  // HOT PATH: frames from a network's TAP to the overlay.
  drainTap(network: Network): void {
    if (this.blocked) return this.waitWithOthers(network);
    const slab = this.fromTaps;
    const offloaded = network.port.vnetHeader === true;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP && !this.blocked; round++) {
      const n = network.port.readFrames(slab);
      const observer = network.tapObserver;
      for (let i = 0; i < n; i++) {
        const start = i * slab.slotSize + slab.headroom;
        // The control plane's look at the frame (local MACs; ARP/ND answered here): see arp-suppress.ts.
        if (observer !== undefined && observer.fromTap(slab.bytes, offloaded ? start + VNET_HDR_LEN : start, offloaded ? slab.lengths[i] - VNET_HDR_LEN : slab.lengths[i])) continue;
        if (offloaded) this.encapsulateOffloaded(network, start, slab.lengths[i]);
        else this.encapsulate(network, start, slab.lengths[i]);
      }
      this.flush(this.sends);
      if (n < slab.slots) return;
    }
  }

  /** A TAP that started after the socket filled up: it waits with the others. */
  private waitWithOthers(network: Network): void {
    network.port.pauseReading?.();
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
    const pathMtus = this.options.pathMtus;
    if (packet > network.overlayMtu || (pathMtus.anyLimited && packet > pathMtus.of(network, remoteId))) {
      const slab = this.fromTaps;
      this.tooBig.handle(network, bytes, frame, length, remoteId, slab.slots * slab.slotSize, slab.headroom);
      return;
    }
    this.forward(network, frame, length, remoteId, this.inheritDf && wantsOuterDf(bytes, frame, length) ? 1 : 0);
  }

  // HOT PATH: a frame in fromTaps to its remote, or to every peer if NO_REMOTE.
  forward(network: Network, frame: number, length: number, remoteId: number, dontFragment: number): void {
    if (remoteId === NO_REMOTE && !mayFlood(network, 1)) return;
    const counters = network.counters;
    const header = frame - VXLAN_HEADER_LEN;
    writeVxlanHeader(this.fromTaps.bytes, header, network.vni);
    const datagramLength = length + VXLAN_HEADER_LEN;
    counters.txFrames++;
    counters.txBytes += length;
    if (remoteId !== NO_REMOTE) {
      this.queue(network, header, datagramLength, remoteId, dontFragment);
      return;
    }
    // Broadcast, multicast or unknown unicast: one copy to every peer.
    const peers = network.peers;
    if (peers.length === 0) {
      counters.drops.no_peers++;
      return;
    }
    counters.floodedFrames++;
    for (let p = 0; p < peers.length; p++) this.queue(network, header, datagramLength, peers[p], dontFragment);
  }

  private queue(network: Network, offset: number, length: number, remoteId: number, dontFragment: number): void {
    const queue = this.sends;
    if (queue.count === queue.capacity) this.flush(queue);
    const remote = this.options.remotes.get(remoteId);
    if (remote === undefined) return;
    queue.add(network, remoteId, remote.record, offset, length, 0, 1, dontFragment);
  }

  /** Sends what waits in fromTaps (before its scratch area or the trains' bytes are reused). */
  flushSends(): void {
    this.flush(this.sends);
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
    this.flush(this.sends);
    const trains = this.trains;
    const status = segmentFrame(segmenter, bytes, start, frame, frameLength, this.options.pathMtus.of(network, remoteId), network, trains);
    if (status !== 0) {
      if (status === SEGMENT_NO_ROOM) counters.drops.oversize++;
      else counters.drops.bad_frame++;
      return;
    }
    const segments = trains.shape[0];
    const stride = trains.shape[1];
    const lastLength = trains.shape[2];
    if (remoteId === NO_REMOTE && !mayFlood(network, segments)) return;
    counters.txFrames += segments;
    counters.txBytes += (segments - 1) * (stride - VXLAN_HEADER_LEN) + lastLength - VXLAN_HEADER_LEN;
    const dontFragment = this.inheritDf && wantsOuterDf(bytes, frame, frameLength) ? 1 : 0;
    if (remoteId !== NO_REMOTE) {
      this.queueTrainsTo(network, remoteId, dontFragment);
    } else if (network.peers.length === 0) {
      counters.drops.no_peers++;
    } else {
      counters.floodedFrames++;
      const peers = network.peers;
      for (let p = 0; p < peers.length; p++) this.queueTrainsTo(network, peers[p], dontFragment);
    }
    this.flush(trains);
  }

  private queueTrainsTo(network: Network, remoteId: number, dontFragment: number): void {
    const remote = this.options.remotes.get(remoteId);
    if (remote === undefined) return;
    const segments = this.trains.shape[0];
    for (let next = 0; ; ) {
      next = queueTrains(this.trains, network, remoteId, remote, next, dontFragment);
      if (next === segments) return;
      this.flush(this.trains);
    }
  }

  // HOT PATH: one sendBatch for a queue, then each datagram counted where it belongs.
  private flush(queue: SendQueue): void {
    if (queue.count === 0) return;
    if (this.backlog.count > 0) {
      // Behind what already waits for the socket, in order.
      for (let k = 0; k < queue.count; k++) this.hold(queue, k);
      queue.count = 0;
      return;
    }
    const socket = this.options.socket;
    if (socket.sendBatch(queue) === SEND_GSO_DISABLED) this.options.onGsoRefused?.(socket.gsoError ?? 0);
    for (let k = 0; k < queue.count; k++) {
      if (queue.results[k] !== 0) {
        this.failed(queue, k);
        continue;
      }
      const segments = queue.segments[k];
      (queue.networks[k] as Network).counters.txDatagrams += segments;
      queue.networks[k] = undefined;
      const remote = this.options.remotes.get(queue.remoteIds[k]);
      if (remote !== undefined) {
        remote.counters.txDatagrams += segments;
        remote.counters.txBytes += queue.lengths[k];
      }
    }
    queue.count = 0;
    if (this.backlog.count > 0) this.block();
  }

  /** Counts entry k of queue, sent or not (the backlog's, after it is sent). */
  private account(queue: SendQueue, k: number): void {
    if (queue.results[k] !== 0) {
      this.failed(queue, k);
      return;
    }
    const network = queue.networks[k] as Network;
    queue.networks[k] = undefined;
    const segments = queue.segments[k];
    network.counters.txDatagrams += segments;
    const remote = this.options.remotes.get(queue.remoteIds[k]);
    if (remote !== undefined) {
      remote.counters.txDatagrams += segments;
      remote.counters.txBytes += queue.lengths[k];
    }
  }

  /** Entry k of queue was not sent: too big for the path, held for later, or dropped. */
  private failed(queue: SendQueue, k: number): void {
    const network = queue.networks[k] as Network;
    queue.networks[k] = undefined;
    const errno = queue.results[k];
    const segments = queue.segments[k];
    if (errno === EMSGSIZE) {
      // The kernel knows a smaller path MTU than we did: learn it, and the next frames fit.
      const datagram = queue.segmentSizes[k] > 0 ? queue.segmentSizes[k] : queue.lengths[k];
      network.counters.drops.path_mtu += segments;
      this.options.pathMtus.lower(queue.remoteIds[k], datagram - VXLAN_HEADER_LEN - ETH_HEADER_LEN);
      return;
    }
    if (errno === EAGAIN && this.options.socket.waitWritable !== undefined) {
      queue.networks[k] = network;
      this.hold(queue, k);
      return;
    }
    network.counters.drops.socket_send += segments;
    this.options.reports.report('socket_send', errno, network.vni);
  }

  /** Keeps entry k of queue in the backlog, or drops and counts it if the backlog is full. */
  private hold(queue: SendQueue, k: number): void {
    const network = queue.networks[k] as Network;
    const remote = this.options.remotes.get(queue.remoteIds[k]);
    if (remote !== undefined && !this.backlog.hold(queue, k, remote.record)) {
      network.counters.drops.socket_send += queue.segments[k];
      this.options.reports.report('socket_send', EAGAIN, network.vni);
    }
    queue.networks[k] = undefined;
  }

  /** The socket buffer is full: stop reading the TAPs until it drains. */
  private block(): void {
    if (this.blocked) return;
    this.blocked = true;
    for (const network of this.options.networks.values()) network.port.pauseReading?.();
    this.options.socket.waitWritable?.(this.onWritable);
  }

  /** The socket is writable again: send the backlog, and read the TAPs once it is gone. */
  private resume(): void {
    const socket = this.options.socket;
    if (socket.sendBatch(this.backlog.queue) === SEND_GSO_DISABLED) this.options.onGsoRefused?.(socket.gsoError ?? 0);
    this.backlog.keep(EAGAIN, this.accountFor);
    if (this.backlog.count > 0) {
      socket.waitWritable?.(this.onWritable);
      return;
    }
    this.blocked = false;
    for (const network of this.options.networks.values()) network.port.resumeReading?.();
  }
}

/**
 * The flood branch's rate limit (see rate-limit.ts): whether `frames` frames
 * may go to every peer now; if not they are counted as flood_limited. A VNI
 * without peers is left to the no_peers count.
 */
function mayFlood(network: Network, frames: number): boolean {
  const limiter = network.floodLimiter;
  if (limiter === undefined || network.peers.length === 0 || limiter.take(frames)) return true;
  network.counters.drops.flood_limited += frames;
  return false;
}
