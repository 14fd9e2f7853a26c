// Hostile input to a running tsvtep, on two namespace hosts: datagrams from
// addresses that are not peers of their VNI, a fuzz of 200 000 random and
// mutated datagrams, a MAC flood of 100 000 source addresses and a broadcast
// storm from a container. After each, the daemon is alive, its counters
// account for every datagram and frame, its memory is within a bound, and
// ping and TCP still work.
//
// Host 1 serves VNI 100 (peer: host 2) and VNI 200 (bridge br200, no
// container; peer: a stranger address on the underlay switch), so "a peer of
// another VNI" can be tried too.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ping } from '../../src/lab/checks';
import { startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';
import {
  buildFuzzer,
  eventually,
  linkStats,
  logLines,
  memoryOf,
  network,
  peerTx,
  sendRawFrames,
  sleep,
  snmp,
  status,
  type Status,
} from '../helpers/hostile';
import { expectPing, expectTransfer, startCapture, useTopology } from '../helpers/lab';

const VNI = 100;
const OTHER_VNI = 200;
/** On the underlay segment (the switch's namespace), a peer of VNI 200 only. */
const STRANGER_IP = '10.0.1.99';
const FUZZ_COUNT = 200_000;
const STRANGER_COUNT = 5_000;
const MAC_FLOOD = 100_000;
/** The default --flood-rate and its burst (one second's worth). */
const FLOOD_RATE = 2_000;
/** How much RSS may grow over a fuzz or flood, MiB; the FDB and buffers are allocated up front. */
const RSS_BOUND_MB = 32;

/** Kinds whose header is good and whose VNI is 100: from a non-peer each is exactly one unknown_sender. */
const STRANGER_KINDS = 'valid,reserved_bits,multicast_source,zero_source,truncated_ip,runt,header_only';

function vxlanHeader(vni: number): Buffer {
  return Buffer.from([0x08, 0, 0, 0, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff, 0]);
}

/** A broadcast frame of ethertype 0x88b5 carrying a marker text. */
function markedFrame(marker: string, source = '020009990001'): Buffer {
  const payload = Buffer.alloc(46);
  payload.write(marker);
  return Buffer.concat([Buffer.from(`ffffffffffff${source}88b5`, 'hex'), payload]);
}

const SEND = `
const dgram = require('dgram');
const [from, to, count, hex] = process.argv.slice(1);
const socket = dgram.createSocket('udp4');
socket.bind(0, from, async () => {
  for (let i = 0; i < Number(count); i++) {
    await new Promise((resolve, reject) => socket.send(Buffer.from(hex, 'hex'), 4789, to, (e) => (e ? reject(e) : resolve())));
  }
  socket.close();
});
`;

async function send(topology: Topology, ns: string, from: string, to: string, datagram: Buffer, count: number): Promise<void> {
  await topology.execOk(ns, [process.execPath, '-e', SEND, from, to, String(count), datagram.toString('hex')]);
}

/** Datagrams of a VNI the daemon read and did not deliver, by the receive-side reasons. */
function receiveDrops(s: Status, vni: number): number {
  const d = network(s, vni).counters.drops;
  return d.runt + d.bad_frame + d.unknown_sender + d.oversize + d.truncated + d.tap_write + d.remotes_full + d.move_refused;
}

/** Every datagram read is delivered or dropped for a reason: the sum over VNIs and the engine's own drops. */
function accounted(s: Status): number {
  let sum = s.engine.drops.bad_header + s.engine.drops.unknown_vni;
  for (const n of s.networks) sum += n.counters.rxFrames + receiveDrops(s, n.vni);
  return sum;
}

describe('hostile input to a running tsvtep', () => {
  let h1Daemon: DaemonProcess | undefined;
  let h2Daemon: DaemonProcess | undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-hostile-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fuzzer = buildFuzzer(dir);

  const lab = useTopology({ hosts: 2, vnis: [VNI], ipv6: false }, async (topology) => {
    const [h1, h2] = topology.hosts;
    await topology.execOk(h1.ns, ['ip', 'link', 'add', 'br200', 'type', 'bridge']);
    await topology.execOk(h1.ns, ['ip', 'link', 'set', 'br200', 'up']);
    await topology.execOk(topology.coreNs, ['ip', 'addr', 'add', `${STRANGER_IP}/24`, 'dev', 'sw']);
    const config = path.join(dir, 'h1.json');
    writeFileSync(
      config,
      JSON.stringify({
        networks: [
          { vni: VNI, bridge: 'br100', peers: [h2.underlayIp] },
          { vni: OTHER_VNI, bridge: 'br200', peers: [STRANGER_IP] },
        ],
      }),
    );
    await startBoth(topology, config);
  });

  async function startBoth(topology: Topology, config = path.join(dir, 'h1.json')): Promise<void> {
    const [h1, h2] = topology.hosts;
    h1Daemon = await startDaemon(topology, h1.ns, ['--config', config]);
    h2Daemon = await startDaemon(topology, h2.ns, ['--vni', String(VNI), '--bridge', 'br100', '--peer', h1.underlayIp]);
  }

  /** A fresh pair of daemons: an empty FDB on both. */
  async function restartBoth(topology: Topology): Promise<void> {
    await h1Daemon?.stop();
    await h2Daemon?.stop();
    await startBoth(topology);
  }

  function daemons(): [DaemonProcess, DaemonProcess] {
    if (!h1Daemon || !h2Daemon) throw new Error('daemons not started');
    return [h1Daemon, h2Daemon];
  }

  function expectHealthy(daemon: DaemonProcess): void {
    expect(daemon.child.exitCode, daemon.log()).toBeNull();
    // Nothing at level error (50) or fatal (60).
    expect(logLines(daemon).filter((line) => line.level >= 50)).toEqual([]);
  }

  it('accepts a datagram only from a configured peer of its VNI', async () => {
    const topology = lab();
    const [h1, h2] = topology.hosts;
    const c1 = topology.container(0);
    await expectPing(topology, c1, topology.container(1));
    const inC1 = await startCapture(topology, c1.ns, ['-i', 'eth0', '-A', 'ether proto 0x88b5']);
    const before = await status(topology, h1.ns);

    // Not a peer of VNI 100 (but of VNI 200): dropped, counted, never delivered.
    await send(topology, topology.coreNs, STRANGER_IP, h1.underlayIp, Buffer.concat([vxlanHeader(VNI), markedFrame('tsvtep-stranger')]), 50);
    // The stranger is a peer of VNI 200: accepted there.
    await send(topology, topology.coreNs, STRANGER_IP, h1.underlayIp, Buffer.concat([vxlanHeader(OTHER_VNI), markedFrame('tsvtep-vni200')]), 5);
    // Host 2 is a peer of VNI 100 but not of VNI 200.
    await send(topology, h2.ns, h2.underlayIp, h1.underlayIp, Buffer.concat([vxlanHeader(OTHER_VNI), markedFrame('tsvtep-h2-vni200')]), 7);
    // Host 2 on VNI 100: delivered, and last, so once it is in, the others were handled.
    await send(topology, h2.ns, h2.underlayIp, h1.underlayIp, Buffer.concat([vxlanHeader(VNI), markedFrame('tsvtep-peer')]), 3);

    const arrived = await inC1.waitFor(/tsvtep-peer/);
    const seen = (await inC1.stop()).join('\n');
    expect(arrived, seen).toBe(true);
    expect(seen).not.toMatch(/tsvtep-stranger|tsvtep-vni200|tsvtep-h2-vni200/);

    let after = await status(topology, h1.ns);
    await eventually(async () => {
      after = await status(topology, h1.ns);
      return network(after, OTHER_VNI).counters.rxFrames - network(before, OTHER_VNI).counters.rxFrames >= 5;
    }, 5_000);
    const delta = (vni: number, read: (s: Status) => number): number => read(after) - read(before);
    expect(delta(VNI, (s) => network(s, VNI).counters.drops.unknown_sender)).toBe(50);
    expect(delta(OTHER_VNI, (s) => network(s, OTHER_VNI).counters.drops.unknown_sender)).toBe(7);
    expect(delta(OTHER_VNI, (s) => network(s, OTHER_VNI).counters.rxFrames)).toBe(5);
    expect(delta(VNI, (s) => network(s, VNI).counters.rxFrames)).toBeGreaterThanOrEqual(3);
    // Neither the stranger nor its MAC was learned on VNI 100.
    expect(network(after, VNI).counters.fdbLearned - network(before, VNI).counters.fdbLearned).toBeLessThanOrEqual(1);
    expectHealthy(daemons()[0]);
  });

  it(`survives ${FUZZ_COUNT} random and mutated datagrams, accounts for each, and keeps forwarding`, async () => {
    const topology = lab();
    const [h1, h2] = topology.hosts;
    const [d1] = daemons();
    const c1 = topology.container(0);
    const c2 = topology.container(1);
    await expectPing(topology, c1, c2);
    const pid = d1.child.pid as number;
    const memoryBefore = memoryOf(pid);
    // A quiet moment, nothing in flight from host 2 to host 1, so that the three snapshots agree.
    let s0 = await status(topology, h1.ns);
    let n0 = await snmp(topology, h1.ns);
    let tx0 = 0;
    await eventually(async () => {
      const received = (await snmp(topology, h1.ns))['Udp:InDatagrams'];
      const sent = (await peerTx(topology, h2.ns)).get(h1.underlayIp) ?? 0;
      await sleep(200);
      s0 = await status(topology, h1.ns);
      n0 = await snmp(topology, h1.ns);
      tx0 = (await peerTx(topology, h2.ns)).get(h1.underlayIp) ?? 0;
      return n0['Udp:InDatagrams'] === received && tx0 === sent;
    }, 10_000, 0);

    // From host 2's address (a peer, so the sender check lets them on to the other checks)...
    const fuzz = JSON.parse(
      await topology.execOk(
        h2.ns,
        [process.execPath, fuzzer, '--to', h1.underlayIp, '--from', h2.underlayIp, '--count', String(FUZZ_COUNT), '--huge-every', '1000', '--seed', '7'],
        120_000,
      ),
    ) as { sent: number; kinds: Record<string, number>; seconds: number };
    // ...and from the stranger: good headers of VNI 100, each one unknown_sender.
    const stranger = JSON.parse(
      await topology.execOk(topology.coreNs, [
        process.execPath,
        fuzzer,
        '--to',
        h1.underlayIp,
        '--from',
        STRANGER_IP,
        '--count',
        String(STRANGER_COUNT),
        '--kinds',
        STRANGER_KINDS,
        '--seed',
        '8',
      ]),
    ) as { sent: number };
    expect(fuzz.sent).toBe(FUZZ_COUNT);
    expect(stranger.sent).toBe(STRANGER_COUNT);

    // Until the socket is drained: what reached the UDP layer was read, and every datagram sent is there.
    let s1 = s0;
    let n1 = n0;
    let tx1 = tx0;
    const reached = (): number => n1['Udp:InDatagrams'] - n0['Udp:InDatagrams'] + (n1['Udp:RcvbufErrors'] - n0['Udp:RcvbufErrors']);
    const expected = (): number => fuzz.sent + stranger.sent + (tx1 - tx0);
    await eventually(async () => {
      s1 = await status(topology, h1.ns);
      n1 = await snmp(topology, h1.ns);
      tx1 = (await peerTx(topology, h2.ns)).get(h1.underlayIp) ?? 0;
      return s1.engine.rxDatagrams - s0.engine.rxDatagrams === n1['Udp:InDatagrams'] - n0['Udp:InDatagrams'] && reached() === expected();
    }, 20_000, 300);
    const read = s1.engine.rxDatagrams - s0.engine.rxDatagrams;
    const figures = {
      sentByFuzzer: fuzz.sent,
      sentByStranger: stranger.sent,
      sentByPeerDaemon: tx1 - tx0,
      fuzzSeconds: fuzz.seconds,
      readByDaemon: read,
      socketBufferOverflow: n1['Udp:RcvbufErrors'] - n0['Udp:RcvbufErrors'],
      delivered: network(s1, VNI).counters.rxFrames - network(s0, VNI).counters.rxFrames,
      badHeader: s1.engine.drops.bad_header - s0.engine.drops.bad_header,
      unknownVni: s1.engine.drops.unknown_vni - s0.engine.drops.unknown_vni,
      drops: Object.fromEntries(
        Object.entries(network(s1, VNI).counters.drops).map(([reason, n]) => [reason, n - network(s0, VNI).counters.drops[reason as 'runt']]),
      ),
    };
    console.log(`fuzz: ${JSON.stringify(figures)}`);
    // The kernel delivered to the socket what the daemon read, and nothing sent went missing on the way.
    expect(read, JSON.stringify(figures)).toBe(n1['Udp:InDatagrams'] - n0['Udp:InDatagrams']);
    expect(reached(), JSON.stringify(figures)).toBe(expected());
    // received = delivered + each drop reason, exactly.
    expect(accounted(s1) - accounted(s0), JSON.stringify(figures)).toBe(read);
    expect(figures.drops.unknown_sender).toBe(STRANGER_COUNT);
    // Every kind of damage was met.
    for (const reason of ['runt', 'bad_frame', 'oversize', 'truncated'] as const) expect(figures.drops[reason], reason).toBeGreaterThan(0);
    expect(figures.badHeader).toBeGreaterThan(0);
    expect(figures.unknownVni).toBeGreaterThan(0);
    expect(figures.delivered).toBeGreaterThan(0);
    // The random source MACs filled the FDB to its limit and no further.
    expect(network(s1, VNI).fdbEntries).toBeLessThanOrEqual(network(s1, VNI).fdbLimit);

    const memoryAfter = memoryOf(pid);
    console.log(`fuzz: RSS ${memoryBefore.rssMb.toFixed(1)} MiB before, ${memoryAfter.rssMb.toFixed(1)} MiB after (peak ${memoryAfter.hwmMb.toFixed(1)} MiB)`);
    expect(memoryAfter.rssMb - memoryBefore.rssMb).toBeLessThan(RSS_BOUND_MB);

    expectHealthy(d1);
    await expectPing(topology, c1, c2);
    await expectPing(topology, c2, c1);
    await expectTransfer(topology, c1, c2, 4, 8 * 1024 * 1024);
    expectHealthy(d1);
  });

  it(`keeps the FDB at its limit under a flood of ${MAC_FLOOD} source MACs, and legitimate traffic flowing`, async () => {
    const topology = lab();
    await restartBoth(topology);
    const [h1, h2] = topology.hosts;
    const [d1] = daemons();
    const c1 = topology.container(0);
    const c2 = topology.container(1);
    await expectPing(topology, c1, c2);
    const pid = d1.child.pid as number;
    const memoryBefore = memoryOf(pid);
    const s0 = await status(topology, h1.ns);
    const tap0 = await linkStats(topology, h2.ns, 'tsv100');

    // Unicast to container 1 (known), so none of it is flooded: every frame crosses to host 1.
    const during = ping(topology, c1, c2.ip, { count: 20, intervalS: 0.1, timeoutS: 1 });
    const flood = await sendRawFrames(topology, c2.ns, { dst: c1.mac, count: MAC_FLOOD, pauseEvery: 100 });
    const pingDuring = await during;
    expect(flood.sent).toBe(MAC_FLOOD);

    const tap1 = await linkStats(topology, h2.ns, 'tsv100');
    const lostOnTheWay = tap1.txDropped - tap0.txDropped; // the TAP queue on host 2 overflowed
    let s1 = s0;
    const seen = (s: Status): number =>
      network(s, VNI).counters.fdbLearned + network(s, VNI).counters.drops.fdb_full - (network(s0, VNI).counters.fdbLearned + network(s0, VNI).counters.drops.fdb_full);
    await eventually(async () => {
      s1 = await status(topology, h1.ns);
      return seen(s1) >= MAC_FLOOD - lostOnTheWay;
    }, 20_000, 300);
    const memoryAfter = memoryOf(pid);
    const n = network(s1, VNI);
    console.log(
      `MAC flood: ${flood.sent} frames in ${flood.seconds.toFixed(2)} s, ${lostOnTheWay} lost at host 2's TAP queue; host 1 FDB ${n.fdbEntries}/${n.fdbLimit}, ` +
        `fdb_full ${n.counters.drops.fdb_full - network(s0, VNI).counters.drops.fdb_full}; RSS ${memoryBefore.rssMb.toFixed(1)} -> ${memoryAfter.rssMb.toFixed(1)} MiB; ` +
        `ping during ${pingDuring.received}/${pingDuring.sent}`,
    );
    expect(seen(s1)).toBeGreaterThanOrEqual(MAC_FLOOD - lostOnTheWay);
    expect(n.fdbEntries).toBe(n.fdbLimit);
    expect(n.counters.drops.fdb_full - network(s0, VNI).counters.drops.fdb_full).toBeGreaterThanOrEqual(MAC_FLOOD - lostOnTheWay - n.fdbLimit);
    expect(memoryAfter.rssMb - memoryBefore.rssMb).toBeLessThan(RSS_BOUND_MB);
    expect(pingDuring.received, pingDuring.output).toBeGreaterThan(0);

    expectHealthy(d1);
    await expectPing(topology, c1, c2);
    await expectPing(topology, c2, c1);
    await expectTransfer(topology, c2, c1, 4, 8 * 1024 * 1024);
  });

  it(`floods a broadcast storm at most at the flood rate (${FLOOD_RATE}/s by default) and counts the rest`, async () => {
    const topology = lab();
    const [h1, h2] = topology.hosts;
    const [d1, d2] = daemons();
    const c1 = topology.container(0);
    const c2 = topology.container(1);
    await expectPing(topology, c2, c1);
    const started = Date.now();
    // A quiet moment: host 2 has read every frame its TAP counted.
    let s0 = await status(topology, h2.ns);
    let r0 = await status(topology, h1.ns);
    let tap0 = await linkStats(topology, h2.ns, 'tsv100');
    await eventually(async () => {
      const before = await linkStats(topology, h2.ns, 'tsv100');
      await sleep(200);
      s0 = await status(topology, h2.ns);
      r0 = await status(topology, h1.ns);
      tap0 = await linkStats(topology, h2.ns, 'tsv100');
      return tap0.txPackets === before.txPackets;
    }, 10_000, 0);

    const storm = await sendRawFrames(topology, c2.ns, { dst: 'ff:ff:ff:ff:ff:ff', count: 30_000, first: 1 << 24 });
    // Until host 2 has read what its TAP queue held, and host 1 what came over.
    let s1 = s0;
    let tap1 = tap0;
    const readFromTap = (): number => {
      const a = network(s1, VNI).counters;
      const b = network(s0, VNI).counters;
      return a.txFrames - b.txFrames + (a.drops.flood_limited - b.drops.flood_limited);
    };
    await eventually(async () => {
      tap1 = await linkStats(topology, h2.ns, 'tsv100');
      s1 = await status(topology, h2.ns);
      return readFromTap() === tap1.txPackets - tap0.txPackets;
    }, 10_000, 200);
    const seconds = (Date.now() - started) / 1000;
    const r1 = await status(topology, h1.ns);
    const flooded = network(s1, VNI).counters.floodedFrames - network(s0, VNI).counters.floodedFrames;
    const limited = network(s1, VNI).counters.drops.flood_limited - network(s0, VNI).counters.drops.flood_limited;
    const arrived = network(r1, VNI).counters.rxFrames - network(r0, VNI).counters.rxFrames;
    console.log(
      `broadcast storm: ${storm.sent} frames in ${storm.seconds.toFixed(2)} s; host 2 read ${readFromTap()}, flooded ${flooded}, flood_limited ${limited}; ` +
        `host 1 received ${arrived}; bound ${FLOOD_RATE} + ${FLOOD_RATE}/s x ${seconds.toFixed(1)} s`,
    );
    // Every frame read from the TAP was sent or counted as limited.
    expect(readFromTap()).toBe(tap1.txPackets - tap0.txPackets);
    expect(limited).toBeGreaterThan(0);
    // The burst, then the rate over the whole time the storm could have been read (an upper bound).
    expect(flooded).toBeLessThanOrEqual(FLOOD_RATE + FLOOD_RATE * seconds);
    expect(arrived).toBeLessThanOrEqual(flooded + 100);

    for (const daemon of [d1, d2]) expectHealthy(daemon);
    await expectPing(topology, c1, c2);
    await expectPing(topology, c2, c1);
  });
});
