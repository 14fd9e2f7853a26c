// Runs the hot path over in-memory ports for many batches and prints how many
// batches it ran; with `node --trace-gc` the collector says how often it had
// to clean the young generation meanwhile. Steady state allocates nothing,
// so after warm-up that is (almost) never, however many batches run. A quarter
// of the frames are broadcasts (flooded), the rest unicast; DF is inherited
// per datagram. test/unit/hot-path.test.ts runs it.
//
//   node --trace-gc --max-semi-space-size=1 dist/bench/alloc-probe.js [batches] [--allocate]
//
// --allocate keeps one small array per batch alive for a while: the control
// that shows the count does see allocation.

import { ManualClock } from '../src/core/clock';
import { Engine } from '../src/core/engine';
import { parseMac } from '../src/core/ethernet';
import { Fdb } from '../src/core/fdb';
import { Network } from '../src/core/network';
import { RemoteTable } from '../src/core/remotes';
import { VXLAN_PORT } from '../src/core/vxlan';
import { FakeSocket, FakeTap, fakeWire, frame } from './fake-ports';

const BATCH = 32;
const batches = Number(process.argv[2] ?? 100_000);
const allocate = process.argv.includes('--allocate');

function vtep(socket: FakeSocket, tap: FakeTap, peer: string, clock: ManualClock) {
  const remotes = new RemoteTable(VXLAN_PORT);
  const engine = new Engine({ socket, remotes, clock, batchSize: BATCH, maxFrameSize: 1518, learnRemotes: false, dontFragment: 'inherit' });
  const network = new Network(100, new Fdb({ clock }), tap);
  network.addPeer(remotes.add(peer).id);
  engine.addNetwork(network);
  return { engine, network };
}

const clock = new ManualClock(1_000);
const socketA = new FakeSocket('10.0.1.41', VXLAN_PORT);
const socketB = new FakeSocket('10.0.1.42', VXLAN_PORT);
fakeWire(socketA, socketB);
const A_MAC = '02:00:01:00:00:64';
const B_MAC = '02:00:02:00:00:64';
const tapA = new FakeTap(Array.from({ length: BATCH }, (_, i) => frame(i % 4 === 0 ? 'ff:ff:ff:ff:ff:ff' : B_MAC, A_MAC, 1000)));
const tapB = new FakeTap([]);
const a = vtep(socketA, tapA, '10.0.1.42', clock);
const b = vtep(socketB, tapB, '10.0.1.41', clock);
const bMac = parseMac(B_MAC) as { high: number; low: number };
a.network.fdb.addStatic(bMac.high, bMac.low, a.network.peers[0]);

const kept: unknown[] = new Array(1024).fill(undefined);
function roundTrip(i: number): void {
  a.engine.drainTap(a.network);
  b.engine.drainSocket();
  if (allocate) kept[i & 1023] = [i, i, i, i];
}

for (let i = 0; i < 20_000; i++) roundTrip(i);
console.log('steady');
for (let i = 0; i < batches; i++) roundTrip(i);
if (tapB.written !== (20_000 + batches) * BATCH) throw new Error(`only ${tapB.written} frames arrived`);
console.log(`done ${batches}`);
