// --learn-remotes on three namespace hosts, with a stranger on the underlay
// switch: the stranger cannot take a container's MAC from its host (ping
// never stops), a container moved between two configured hosts answers its
// next ping, and 20 000 spoofed senders neither grow the daemon's memory nor
// /metrics, and the learned remotes go away after the ageing time.

import { describe, expect, it } from 'vitest';
import { ping } from '../../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';
import { eventually, memoryOf, network, sendGratuitousArp, snmp, status } from '../helpers/hostile';
import { expectPing, useTopology } from '../helpers/lab';
import { httpRequest } from '../helpers/metrics';

const VNI = 100;
const STRANGER_IP = '10.0.1.99';
/** Spoofed senders come from this /16 (a local route in the switch's namespace). */
const SPOOFED = '10.77';
const SPOOFED_COUNT = 20_000;
const MAX_REMOTES = 1_024;
const AGEING_S = 3;
const METRICS = '127.0.0.1:9479';
const RSS_GROWTH_BOUND_MB = 10;

/**
 * Runs in the switch's namespace. mode 'poison': binds STRANGER_IP:4789,
 * sends `count` copies of hex every 100 ms, counts what comes back to it.
 * mode 'spoof': sends one datagram from each of `count` addresses 10.77.x.y,
 * each with its own inner source MAC, 100 senders at a time.
 */
const SENDER = `
const dgram = require('dgram');
const [mode, to, count, arg] = process.argv.slice(1);
const n = Number(count);
const frame = (mac) => Buffer.concat([Buffer.from('0800000000006400', 'hex'), Buffer.from('ffffffffffff' + mac + '88b5', 'hex'), Buffer.alloc(46)]);
if (mode === 'poison') {
  const socket = dgram.createSocket('udp4');
  let received = 0;
  socket.on('message', () => received++);
  socket.bind(4789, '${STRANGER_IP}', async () => {
    for (let i = 0; i < n; i++) {
      await new Promise((resolve, reject) => socket.send(frame(arg), 4789, to, (e) => (e ? reject(e) : resolve())));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    socket.close();
    console.log(JSON.stringify({ sent: n, received }));
  });
} else {
  const one = (i) => new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.on('error', reject);
    const address = '${SPOOFED}.' + ((i + 1) >> 8) + '.' + ((i + 1) & 255);
    socket.bind(0, address, () => {
      const mac = '0277' + (i + 1).toString(16).padStart(8, '0');
      socket.send(frame(mac), 4789, to, (e) => { socket.close(); e ? reject(e) : resolve(); });
    });
  });
  (async () => {
    for (let i = 0; i < n; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + 100); j++) batch.push(one(j));
      await Promise.all(batch);
    }
    console.log(JSON.stringify({ sent: n }));
  })();
}
`;

interface PeerRow {
  address: string;
  learned: boolean;
  vnis: number[];
}

async function peers(topology: Topology, ns: string): Promise<PeerRow[]> {
  return (JSON.parse(await topology.execOk(ns, [process.execPath, CLI_PATH, 'peers', '--json'], 15_000)) as { peers: PeerRow[] }).peers;
}

async function fdbRemote(topology: Topology, ns: string, mac: string): Promise<string | undefined> {
  const reply = JSON.parse(await topology.execOk(ns, [process.execPath, CLI_PATH, 'fdb', 'show', '--json'])) as { entries: { mac: string; remote: string }[] };
  return reply.entries.find((e) => e.mac === mac)?.remote;
}

/** The /metrics text, and its tsvtep_ series (the process_ and nodejs_ ones change digits from scrape to scrape). */
async function metrics(topology: Topology, ns: string): Promise<{ bytes: number; series: string[] }> {
  const result = await httpRequest(topology, ns, `http://${METRICS}/metrics`);
  expect(result.status).toBe(200);
  const series = result.body.split('\n').filter((line) => line.startsWith('tsvtep_')).map((line) => line.replace(/ \S+$/, ''));
  return { bytes: result.body.length, series };
}

describe('--learn-remotes: bounded, ageing, and no FDB poisoning', () => {
  const daemons: DaemonProcess[] = [];
  const lab = useTopology({ hosts: 3, vnis: [VNI], ipv6: false }, async (topology) => {
    await topology.execOk(topology.coreNs, ['ip', 'addr', 'add', `${STRANGER_IP}/24`, 'dev', 'sw']);
    // Every address of the /16 is local to the switch's namespace (AnyIP), so a socket can send from each.
    await topology.execOk(topology.coreNs, ['ip', 'link', 'set', 'lo', 'up']);
    await topology.execOk(topology.coreNs, ['ip', 'route', 'add', 'local', `${SPOOFED}.0.0/16`, 'dev', 'lo']);
    await topology.execOk(topology.hosts[0].ns, ['ip', 'route', 'add', `${SPOOFED}.0.0/16`, 'via', STRANGER_IP]);
    for (const host of topology.hosts) {
      const peerArgs = topology.hosts.filter((h) => h !== host).flatMap((h) => ['--peer', h.underlayIp]);
      const extra = host.index === 0 ? ['--ageing', String(AGEING_S), '--metrics', METRICS] : [];
      daemons.push(await startDaemon(topology, host.ns, ['--vni', String(VNI), '--bridge', 'br100', '--learn-remotes', ...peerArgs, ...extra]));
    }
  });

  it("refuses a stranger's datagram carrying a container's MAC (move_refused); ping never stops", async () => {
    const topology = lab();
    const [h1, h2] = topology.hosts;
    const c1 = topology.container(0);
    const c2 = topology.container(1);
    await expectPing(topology, c1, c2);
    expect(await fdbRemote(topology, h1.ns, c2.mac)).toBe(h2.underlayIp);
    const refusedBefore = network(await status(topology, h1.ns), VNI).counters.drops.move_refused;

    const pinging = ping(topology, c1, c2.ip, { count: 30, intervalS: 0.1 });
    const poison = topology.execOk(topology.coreNs, [process.execPath, '-e', SENDER, 'poison', h1.underlayIp, '20', c2.mac.replace(/:/g, '')], 30_000);
    const [pinged, poisoned] = await Promise.all([pinging, poison]);
    expect(pinged.received, pinged.output).toBe(30);
    expect(JSON.parse(poisoned)).toEqual({ sent: 20, received: 0 });
    expect(network(await status(topology, h1.ns), VNI).counters.drops.move_refused - refusedBefore).toBe(20);
    expect(await fdbRemote(topology, h1.ns, c2.mac)).toBe(h2.underlayIp);
    // The stranger is listed, marked as learned; the peers as peers.
    const rows = await peers(topology, h1.ns);
    expect(rows.find((r) => r.address === STRANGER_IP)).toMatchObject({ learned: true, vnis: [VNI] });
    expect(rows.filter((r) => !r.learned).map((r) => r.address).sort()).toEqual([h2.underlayIp, topology.hosts[2].underlayIp].sort());
  });

  it('a container moved between two configured hosts answers its next ping', async () => {
    const topology = lab();
    const [h1, , h3] = topology.hosts;
    const c1 = topology.container(0);
    const moving = topology.container(1);
    await expectPing(topology, c1, moving);
    await topology.execOk(moving.ns, ['ip', 'link', 'del', 'eth0']);
    await topology.execOk(moving.ns, ['ip', 'link', 'add', 'eth0', 'address', moving.mac, 'type', 'veth', 'peer', 'name', 'vm100', 'netns', h3.ns]);
    await topology.execOk(h3.ns, ['ip', 'link', 'set', 'vm100', 'master', 'br100', 'up']);
    await topology.execOk(moving.ns, ['ip', 'addr', 'add', `${moving.ip}/16`, 'dev', 'eth0']);
    await topology.execOk(moving.ns, ['ip', 'link', 'set', 'eth0', 'up']);
    await sendGratuitousArp(topology, moving.ns, moving.ip, moving.mac);
    const next = await ping(topology, c1, moving.ip, { count: 1, timeoutS: 2 });
    expect(next.received, next.output).toBe(1);
    expect(await fdbRemote(topology, h1.ns, moving.mac)).toBe(h3.underlayIp);
    await expectPing(topology, c1, moving);
  });

  it(`${SPOOFED_COUNT} spoofed senders: at most ${MAX_REMOTES} learned, RSS and /metrics do not grow, and they age out`, async () => {
    const topology = lab();
    const h1 = topology.hosts[0];
    const pid = daemons[0].child.pid as number;
    const spoof = (count: number) => topology.execOk(topology.coreNs, [process.execPath, '-e', SENDER, 'spoof', h1.underlayIp, String(count)], 120_000);
    // The stranger of the first test ages out first (it sent nothing since), so the count below is exact.
    expect(await eventually(async () => (await peers(topology, h1.ns)).every((r) => !r.learned), 30_000, 1_000)).toBe(true);
    // A few senders first, so the peer="learned" series exists; then measure.
    await spoof(10);
    await peers(topology, h1.ns);
    const metricsBefore = await metrics(topology, h1.ns);
    const rssBefore = memoryOf(pid).rssMb;
    const kernelDropsBefore = (await snmp(topology, h1.ns))['Udp:RcvbufErrors'];
    const fullBefore = network(await status(topology, h1.ns), VNI).counters.drops.remotes_full;

    await spoof(SPOOFED_COUNT);
    const kernelDrops = (await snmp(topology, h1.ns))['Udp:RcvbufErrors'] - kernelDropsBefore;
    const learned = (await peers(topology, h1.ns)).filter((r) => r.learned);
    expect(learned.length).toBe(MAX_REMOTES);
    const full = network(await status(topology, h1.ns), VNI).counters.drops.remotes_full - fullBefore;
    // The first 10 were learned already: the rest of the first 1024 are learned, all others counted.
    expect(full + kernelDrops).toBe(SPOOFED_COUNT - MAX_REMOTES);
    const metricsAfter = await metrics(topology, h1.ns);
    const rssAfter = memoryOf(pid).rssMb;
    console.log(
      `${SPOOFED_COUNT} spoofed senders: RSS ${rssBefore.toFixed(1)} -> ${rssAfter.toFixed(1)} MiB, /metrics ${metricsBefore.bytes} -> ${metricsAfter.bytes} bytes, remotes_full ${full}, kernel drops ${kernelDrops}`,
    );
    expect(rssAfter - rssBefore).toBeLessThan(RSS_GROWTH_BOUND_MB);
    expect(metricsAfter.series).toEqual(metricsBefore.series);
    expect(Math.abs(metricsAfter.bytes - metricsBefore.bytes)).toBeLessThan(2_048);

    // No traffic and their FDB entries aged: the table shrinks to the stranger-free state.
    expect(await eventually(async () => (await peers(topology, h1.ns)).filter((r) => r.learned).length === 0, 30_000, 1_000)).toBe(true);
    const aged = network(await status(topology, h1.ns), VNI).counters;
    expect(aged.remotesAgedOut).toBeGreaterThanOrEqual(MAX_REMOTES);
    expect((await metrics(topology, h1.ns)).series).toEqual(metricsBefore.series);
    expect(daemons[0].child.exitCode).toBeNull();
  });
});
