// The forwarding engine: RFC 7348 encapsulation and decapsulation between the
// networks' TAPs and the shared UDP socket. It does no I/O of its own beyond
// the batched calls on the ports it is given, so it runs the same over the
// native devices and over in-memory fakes.
//
// Steady state allocates nothing: frames live in two preallocated slabs with
// headroom in front of every slot, so the VXLAN header is written in place.

import { ADDR_RECORD_LEN } from './address';
import type { Clock } from './clock';
import { EngineCounters } from './counters';
import { ETH_HEADER_LEN, ETH_SRC_OFFSET, isGroupMac, isValidSourceMac, macHigh, macLow } from './ethernet';
import { LEARN_MOVED, LEARN_NEW, LEARN_TABLE_FULL, NO_REMOTE } from './fdb';
import type { Network } from './network';
import type { DatagramPort } from './ports';
import type { RemoteTable } from './remotes';
import { VXLAN_HEADER_LEN, readVxlanVni, writeVxlanHeader } from './vxlan';

/** Bytes kept free in front of every slot; room for the VXLAN header and more. */
export const HEADROOM = 64;
/** Batches drained per wake-up before yielding to the other direction. */
const MAX_ROUNDS_PER_WAKEUP = 8;

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
  /** Called once per failing errno on a send or TAP write, for logging. */
  onIoError?: (what: 'socket_send' | 'tap_write', errno: number, vni: number) => void;
}

/** A batch of frames or datagrams in one slab, slot i at i*slotSize + HEADROOM. */
class Slab {
  readonly bytes: Buffer;
  readonly lengths: Uint32Array;
  readonly records: Buffer;
  constructor(
    readonly slots: number,
    readonly slotSize: number,
  ) {
    this.bytes = Buffer.alloc(slots * slotSize);
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
  constructor(readonly capacity: number) {
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.records = Buffer.alloc(capacity * ADDR_RECORD_LEN);
    this.results = new Int32Array(capacity);
    this.remoteIds = new Int32Array(capacity);
    this.networks = new Array(capacity).fill(undefined);
  }
}

/** Frames waiting for one writeFrames call on a network's TAP. */
class WriteQueue {
  count = 0;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly results: Int32Array;
  constructor(capacity: number) {
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.results = new Int32Array(capacity);
  }
}

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

  constructor(private readonly options: EngineOptions) {
    this.learnRemotes = options.learnRemotes;
    const slotSize = roundUp(HEADROOM + VXLAN_HEADER_LEN + options.maxFrameSize, 256);
    this.fromTaps = new Slab(options.batchSize, slotSize);
    this.fromSocket = new Slab(options.batchSize, slotSize);
    this.sendQueue = new SendQueue(Math.max(options.batchSize * 4, 64));
  }

  get slotSize(): number {
    return this.fromTaps.slotSize;
  }

  addNetwork(network: Network): void {
    if (this.networks.has(network.vni)) throw new Error(`VNI ${network.vni} is already served`);
    this.networks.set(network.vni, network);
    this.writeQueues.set(network, new WriteQueue(this.options.batchSize));
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
  }

  // HOT PATH: frames from a network's TAP to the overlay.
  drainTap(network: Network): void {
    const slab = this.fromTaps;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP; round++) {
      const n = network.port.readFrames(slab.bytes, slab.slotSize, HEADROOM, slab.slots, slab.lengths);
      for (let i = 0; i < n; i++) this.encapsulate(network, i * slab.slotSize + HEADROOM, slab.lengths[i]);
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
      );
      this.counters.rxDatagrams += n;
      for (let i = 0; i < n; i++) this.decapsulate(i * slab.slotSize + HEADROOM, slab.lengths[i], i * ADDR_RECORD_LEN);
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
    const header = frame - VXLAN_HEADER_LEN;
    writeVxlanHeader(bytes, header, network.vni);
    const datagramLength = length + VXLAN_HEADER_LEN;
    counters.txFrames++;
    counters.txBytes += length;
    if (!isGroupMac(bytes, frame)) {
      const remoteId = network.fdb.lookup(macHigh(bytes, frame), macLow(bytes, frame));
      if (remoteId !== NO_REMOTE) {
        this.queueSend(network, header, datagramLength, remoteId);
        return;
      }
    }
    // Broadcast, multicast or unknown unicast: one copy to every peer.
    const peers = network.peers;
    if (peers.length === 0) {
      counters.drops.no_peers++;
      return;
    }
    counters.floodedFrames++;
    for (let p = 0; p < peers.length; p++) this.queueSend(network, header, datagramLength, peers[p]);
  }

  private queueSend(network: Network, offset: number, length: number, remoteId: number): void {
    const queue = this.sendQueue;
    if (queue.count === queue.capacity) this.flushSends();
    const remote = this.options.remotes.get(remoteId);
    if (remote === undefined) return;
    const k = queue.count++;
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
    );
    for (let k = 0; k < queue.count; k++) {
      const network = queue.networks[k] as Network;
      queue.networks[k] = undefined;
      const errno = queue.results[k];
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
    if (length > slab.slotSize - HEADROOM) {
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
    if (queue.count === 0) this.pendingWrites.push(network);
    const k = queue.count++;
    queue.offsets[k] = frame;
    queue.lengths[k] = frameLength;
  }

  private flushWrites(): void {
    const pending = this.pendingWrites;
    for (let p = 0; p < pending.length; p++) {
      const network = pending[p];
      const queue = this.writeQueues.get(network) as WriteQueue;
      network.port.writeFrames(this.fromSocket.bytes, queue.offsets, queue.lengths, queue.count, queue.results);
      const counters = network.counters;
      for (let k = 0; k < queue.count; k++) {
        const errno = queue.results[k];
        if (errno === 0) {
          counters.rxFrames++;
          counters.rxBytes += queue.lengths[k];
        } else {
          counters.drops.tap_write++;
          this.reportIoError('tap_write', errno, network.vni);
        }
      }
      queue.count = 0;
    }
    pending.length = 0;
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
