// Receive: datagrams from the overlay to the networks' TAPs (RFC 7348
// decapsulation). A batch of datagrams is received into fromSocket; each is
// checked (header, VNI, sender, frame), its inner source MAC learned, and the
// inner frame queued for its network's TAP (WriteQueue), in place: no copy.
// Runs of datagrams handed over as one (UDP_GRO) are split here. With TAP
// offloads, TCP segments of one flow are merged again before they are
// written (coalesce.ts). One writeFrames per network per batch.

import { ADDR_RECORD_LEN } from './address';
import { EngineCounters } from './counters';
import { ETH_SRC_OFFSET, isValidSourceMac, macHigh, macLow } from './ethernet';
import { LEARN_MOVE_LIMITED, LEARN_MOVE_REFUSED, LEARN_MOVED, LEARN_NEW, LEARN_STATIC_KEPT, LEARN_TABLE_FULL, NO_REMOTE } from './fdb';
import type { Network } from './network';
import { ETH_HEADER_LEN, VXLAN_HEADER_LEN } from './protocol';
import type { DatagramPort } from './ports';
import { Slab, WriteQueue } from './batches';
import { TcpCoalescer } from './coalesce';
import type { IoErrorReports } from './io-errors';
import type { RemoteTable } from './remotes';
import { isTruncated } from './too-big';
import { readVxlanVni } from './vxlan';

/** Batches drained per wake-up before yielding to the other direction. */
const MAX_ROUNDS_PER_WAKEUP = 8;

export interface RxOptions {
  socket: DatagramPort;
  remotes: RemoteTable;
  reports: IoErrorReports;
  networks: ReadonlyMap<number, Network>;
  slab: Slab;
  maxFrameSize: number;
  /** Entries of a network's write queue. */
  writeQueueCapacity: number;
  /** Merges TCP segments for TAPs with offloads; undefined without. */
  coalescer: TcpCoalescer | undefined;
  learnRemotes: boolean;
}

export class Rx {
  readonly counters = new EngineCounters();
  /** Accept datagrams from non-peers and learn them; may change at runtime. */
  learnRemotes: boolean;
  private readonly fromSocket: Slab;
  private readonly writeQueues = new Map<Network, WriteQueue>();
  /**
   * Networks with frames queued for their TAP during the current receive batch: the first
   * pendingCount entries. Never truncated (a truncated array reallocates on the next push).
   */
  private readonly pendingWrites: (Network | undefined)[] = [];
  private pendingCount = 0;

  constructor(private readonly options: RxOptions) {
    this.fromSocket = options.slab;
    this.learnRemotes = options.learnRemotes;
  }

  addNetwork(network: Network): void {
    this.writeQueues.set(network, new WriteQueue(this.options.writeQueueCapacity, this.fromSocket.bytes));
  }

  removeNetwork(network: Network): void {
    this.writeQueues.delete(network);
  }

  // HOT PATH: datagrams from the overlay to the networks' TAPs.
  drainSocket(): void {
    const slab = this.fromSocket;
    const runs = slab.segmentSizes;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP; round++) {
      const n = this.options.socket.recvBatch(slab);
      for (let i = 0; i < n; i++) {
        const start = i * slab.slotSize + slab.headroom;
        const length = slab.lengths[i];
        const segment = runs === undefined ? 0 : runs[i];
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
  private decapsulate(datagram: number, length: number, record: number): void {
    const slab = this.fromSocket;
    const bytes = slab.bytes;
    const vni = readVxlanVni(bytes, datagram, length);
    if (vni < 0) {
      this.counters.drops.bad_header++;
      return;
    }
    const network = this.options.networks.get(vni);
    if (network === undefined) {
      this.counters.drops.unknown_vni++;
      return;
    }
    const counters = network.counters;
    // Slots may be far larger than a frame (64 KiB with UDP GRO): the frame must fit the TAP too.
    if (length > slab.slotSize - slab.headroom || length - VXLAN_HEADER_LEN > this.options.maxFrameSize) {
      counters.drops.oversize++;
      return;
    }
    const remotes = this.options.remotes;
    let remoteId = remotes.findByRecord(slab.records, record);
    const fromPeer = remoteId !== NO_REMOTE && network.isPeer(remoteId);
    if (!fromPeer) {
      if (!this.learnRemotes) {
        counters.drops.unknown_sender++;
        return;
      }
      // Bounded per VNI (--max-remotes); NO_REMOTE: counted as remotes_full.
      remoteId = network.learnedRemotes.admit(remoteId, remotes, slab.records, record, counters);
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
    else if (learned === LEARN_STATIC_KEPT) counters.fdbStaticKept++;
    else if (learned === LEARN_TABLE_FULL) counters.drops.fdb_full++;
    else if (learned === LEARN_MOVE_LIMITED) counters.fdbMoveLimited++;
    else if (learned === LEARN_MOVE_REFUSED) {
      counters.drops.move_refused++;
      return;
    }

    const remote = remotes.get(remoteId);
    if (remote !== undefined) {
      remote.counters.rxDatagrams++;
      remote.counters.rxBytes += length;
    }
    const queue = this.writeQueues.get(network) as WriteQueue;
    if (queue.count === queue.capacity) this.writeTo(network, queue);
    if (queue.count === 0 && !queue.pending) {
      queue.pending = true;
      this.pendingWrites[this.pendingCount++] = network;
    }
    const k = queue.count++;
    queue.offsets[k] = frame;
    queue.lengths[k] = frameLength;
    queue.frames[k] = 1;
    queue.innerBytes[k] = frameLength;
  }

  private flushWrites(): void {
    const pending = this.pendingWrites;
    for (let p = 0; p < this.pendingCount; p++) {
      const network = pending[p] as Network;
      pending[p] = undefined;
      const queue = this.writeQueues.get(network);
      // A network removed during the batch has no queue any more.
      if (queue === undefined) continue;
      queue.pending = false;
      this.writeTo(network, queue);
    }
    this.pendingCount = 0;
  }

  // HOT PATH: one writeFrames per network per batch.
  private writeTo(network: Network, queue: WriteQueue): void {
    const coalescer = this.options.coalescer;
    const coalesce = coalescer !== undefined && network.port.vnetHeader === true;
    if (coalesce) {
      const slab = this.fromSocket;
      queue.count = coalescer.coalesce(slab.bytes, queue, queue.count, slab.slots * slab.slotSize, slab.bytes.length);
    }
    queue.ownHeaders = coalesce;
    network.port.writeFrames(queue);
    const counters = network.counters;
    for (let k = 0; k < queue.count; k++) {
      const errno = queue.results[k];
      if (errno === 0) {
        counters.rxFrames += queue.frames[k];
        counters.rxBytes += queue.innerBytes[k];
      } else {
        counters.drops.tap_write += queue.frames[k];
        this.options.reports.report('tap_write', errno, network.vni);
      }
    }
    queue.count = 0;
  }
}
