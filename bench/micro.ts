// Micro-benchmarks of the hot path: the VXLAN header codec, the FDB, the
// forwarding decision, and a batch of 64 frames through two engines and back
// out (encapsulate on one, decapsulate on the other) over in-memory ports.
//
//   npm run bench:micro

import Benchmark from 'benchmark';
import { ManualClock } from '../src/core/clock';
import { Engine } from '../src/core/engine';
import { parseMac } from '../src/core/ethernet';
import { Fdb } from '../src/core/fdb';
import { egressRemote } from '../src/core/forward';
import { Network } from '../src/core/network';
import { RemoteTable } from '../src/core/remotes';
import { VXLAN_PORT, readVxlanVni, writeVxlanHeader } from '../src/core/vxlan';
import { FakeSocket, FakeTap, fakeWire, frame } from './fake-ports';

const VNI = 100;
const BATCH = 64;
const FRAME_SIZE = 1464; // a full frame on a 1450-byte overlay MTU
const TABLE_SIZE = 1000;

/** Keeps results alive so the optimiser cannot drop the work. */
let sink = 0;

function mac(i: number): { high: number; low: number } {
  return { high: 0x0200, low: (0x10000000 + i) >>> 0 };
}


// ---- header codec
const header = Buffer.alloc(64);
let vni = 0;

// ---- FDB with a fixed clock and TABLE_SIZE learned entries
const clock = new ManualClock(1_000);
const fdb = new Fdb({ clock });
const macs = Array.from({ length: TABLE_SIZE }, (_, i) => mac(i));
for (let i = 0; i < TABLE_SIZE; i++) fdb.learn(macs[i].high, macs[i].low, i % 4);
let cursor = 0;

// ---- the forwarding decision, as Engine.encapsulate takes it
const unicastFrame = frame('02:00:10:00:00:07', '02:00:01:00:00:01', 64);
const bytes = unicastFrame;


// ---- two engines back to back: A encapsulates, B decapsulates
const A_ADDR = '10.0.1.41';
const B_ADDR = '10.0.1.42';
const A_MAC = '02:00:01:00:00:64';
const B_MAC = '02:00:02:00:00:64';

function engine(socket: FakeSocket, tap: FakeTap, peer: string, engineClock: ManualClock): { engine: Engine; network: Network } {
  const remotes = new RemoteTable(VXLAN_PORT);
  const e = new Engine({ socket, remotes, clock: engineClock, batchSize: BATCH, maxFrameSize: 1450 + 18, learnRemotes: false });
  const network = new Network(VNI, new Fdb({ clock: engineClock }), tap);
  network.addPeer(remotes.add(peer).id);
  e.addNetwork(network);
  return { engine: e, network };
}

const engineClock = new ManualClock(1_000);
const socketA = new FakeSocket(A_ADDR, VXLAN_PORT);
const socketB = new FakeSocket(B_ADDR, VXLAN_PORT);
fakeWire(socketA, socketB);
const frames = Array.from({ length: BATCH }, () => frame(B_MAC, A_MAC, FRAME_SIZE));
const tapA = new FakeTap(frames);
const tapB = new FakeTap([]);
const a = engine(socketA, tapA, B_ADDR, engineClock);
const b = engine(socketB, tapB, A_ADDR, engineClock);
// A knows where B_MAC lives, as it would after B's first frame: unicast, not flood.
const bMac = parseMac(B_MAC) as { high: number; low: number };
a.network.fdb.addStatic(bMac.high, bMac.low, a.network.peers[0]);

function roundTrip(): void {
  a.engine.drainTap(a.network);
  b.engine.drainSocket();
}

// One round trip first, checked, so the benchmark measures working code.
roundTrip();
if (tapB.written !== BATCH || a.network.counters.floodedFrames !== 0 || b.network.counters.fdbLearned !== 1) {
  throw new Error(
    `engine round trip is wrong: ${tapB.written} of ${BATCH} frames arrived, ` +
      `${a.network.counters.floodedFrames} flooded, ${b.network.counters.fdbLearned} learned`,
  );
}

interface Row {
  name: string;
  opsPerSec: number;
  nsPerOp: number;
  rme: number;
  samples: number;
  perFrameNs?: number;
}

const rows: Row[] = [];
const suite = new Benchmark.Suite('tsvtep hot path');

suite
  .add('vxlan: writeVxlanHeader', () => {
    writeVxlanHeader(header, 8, vni);
    vni = (vni + 1) & 0xffffff;
  })
  .add('vxlan: readVxlanVni', () => {
    sink ^= readVxlanVni(header, 8, 56);
  })
  .add(`fdb: lookup, hit (${TABLE_SIZE} entries)`, () => {
    const m = macs[cursor];
    cursor = (cursor + 1) % TABLE_SIZE;
    sink ^= fdb.lookup(m.high, m.low);
  })
  .add(`fdb: lookup, miss (${TABLE_SIZE} entries)`, () => {
    sink ^= fdb.lookup(0x0200, 0xfffffff0);
  })
  .add(`fdb: learn, refresh (${TABLE_SIZE} entries)`, () => {
    const m = macs[cursor];
    cursor = (cursor + 1) % TABLE_SIZE;
    sink ^= fdb.learn(m.high, m.low, cursor & 3);
  })
  .add('fdb: learn new + remove', () => {
    sink ^= fdb.learn(0x0200, 0xfffffff1, 1);
    fdb.remove(0x0200, 0xfffffff1);
  })
  .add('decision: unicast to known MAC', () => {
    sink ^= egressRemote(bytes, 0, fdb);
  })
  .add(`engine: ${BATCH} frames of ${FRAME_SIZE} B encap+decap`, roundTrip)
  .on('cycle', (event: Benchmark.Event) => {
    const bench = event.target as Benchmark.Target & { stats: Benchmark.Stats };
    const name = String(bench.name);
    const nsPerOp = bench.stats.mean * 1e9;
    const row: Row = { name, opsPerSec: bench.hz ?? 0, nsPerOp, rme: bench.stats.rme, samples: bench.stats.sample.length };
    if (name.startsWith('engine:')) row.perFrameNs = nsPerOp / BATCH;
    rows.push(row);
    console.log(String(event.target));
  })
  .on('complete', () => {
    if (tapB.written < BATCH * 2) throw new Error('engine benchmark moved no frames');
    console.log('');
    const width = Math.max(...rows.map((r) => r.name.length));
    console.log(`${'benchmark'.padEnd(width)}  ${'ops/sec'.padStart(14)}  ${'ns/op'.padStart(10)}  ${'±%'.padStart(6)}`);
    for (const r of rows) {
      const extra = r.perFrameNs === undefined ? '' : `  (${r.perFrameNs.toFixed(1)} ns/frame, ${((r.opsPerSec * BATCH) / 1e6).toFixed(2)} Mframes/s)`;
      console.log(
        `${r.name.padEnd(width)}  ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(14)}  ${r.nsPerOp.toFixed(1).padStart(10)}  ${r.rme.toFixed(2).padStart(6)}${extra}`,
      );
    }
    if (sink === 0x7fffffff) console.log(''); // uses sink
  })
  .run({ async: false });
