// Issue 4, Prometheus metrics: tsvtep on two hosts with --metrics (IPv4
// loopback on host 1, IPv6 loopback on host 2), scraped from inside the host
// namespaces. The counters match the traffic sent, malformed datagrams are
// counted by reason, promtool accepts the output, /healthz follows the TAP,
// bad values and a taken port fail as documented, and a real Prometheus
// server scrapes the daemon and answers a per-VNI rate() query.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { NetworkDrops } from '../../src/core/counters';
import { ping, waitForPing } from '../../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import { stopProcess, type Topology } from '../../src/lab/topology';
import { useTopology } from '../helpers/lab';
import { httpRequest, promtoolCheck, scrape, type Samples } from '../helpers/metrics';

const VNI = 100;
const METRICS_PORT = 9477;
const PROMETHEUS_PORT = 19090;
const H1_METRICS = `http://127.0.0.1:${METRICS_PORT}`;
const H2_METRICS = `http://[::1]:${METRICS_PORT}`;
/** An address the test gives the underlay switch's namespace: on the segment, but no peer. */
const STRANGER_IP = '10.0.1.99';

/** ICMP echo with ping's default 56 data bytes: 14 Ethernet + 20 IP + 8 ICMP + 56. */
const PING_FRAME_BYTES = 98;

const vniLabel = { vni: String(VNI) };

function delta(after: Samples, before: Samples, name: string, labels: Record<string, string> = {}): number {
  return after.value(name, labels) - before.value(name, labels);
}

// ---- malformed VXLAN datagrams, sent with node's dgram from a namespace

function vxlanHeader(vni: number, flags = 0x08): Buffer {
  return Buffer.from([flags, 0, 0, 0, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff, 0]);
}

/** A minimum-size broadcast Ethernet frame (IPv4 ethertype, zero payload) from source. */
function frame(source: string): Buffer {
  const mac = Buffer.from(source.replace(/:/g, ''), 'hex');
  return Buffer.concat([Buffer.alloc(6, 0xff), mac, Buffer.from([0x08, 0x00]), Buffer.alloc(46)]);
}

const SEND = `
const dgram = require('dgram');
const [to, port, ...payloads] = process.argv.slice(1);
const socket = dgram.createSocket(to.includes(':') ? 'udp6' : 'udp4');
let left = payloads.length;
for (const hex of payloads) {
  socket.send(Buffer.from(hex, 'hex'), Number(port), to, (error) => {
    if (error) { process.stderr.write(String(error) + '\\n'); process.exit(1); }
    if (--left === 0) socket.close();
  });
}
`;

async function sendDatagrams(topology: Topology, ns: string, to: string, datagrams: Buffer[]): Promise<void> {
  await topology.execOk(ns, [process.execPath, '-e', SEND, to, '4789', ...datagrams.map((d) => d.toString('hex'))]);
}

function times(n: number, datagram: Buffer): Buffer[] {
  return Array.from({ length: n }, () => datagram);
}

/** Scrapes until done(samples) holds or the deadline passes; returns the last scrape. */
async function scrapeUntil(topology: Topology, ns: string, url: string, done: (s: Samples) => boolean, deadlineMs = 15_000): Promise<Samples> {
  const end = Date.now() + deadlineMs;
  let samples = await scrape(topology, ns, url);
  while (!done(samples) && Date.now() < end) {
    await sleep(200);
    samples = await scrape(topology, ns, url);
  }
  return samples;
}

describe('Prometheus metrics on two hosts', () => {
  const daemons: DaemonProcess[] = [];
  const lab = useTopology({ hosts: 2, vnis: [VNI], ipv6: true }, async (topology) => {
    const [h1, h2] = topology.hosts;
    const common = ['--vni', String(VNI), '--bridge', h1.bridges.get(VNI) as string];
    daemons.push(await startDaemon(topology, h1.ns, [...common, '--peer', h2.underlayIp, '--metrics', `127.0.0.1:${METRICS_PORT}`]));
    daemons.push(await startDaemon(topology, h2.ns, [...common, '--peer', h1.underlayIp, '--metrics', `[::1]:${METRICS_PORT}`]));
    const [c1, c2] = [topology.container(0), topology.container(1)];
    if (!(await waitForPing(topology, c1, c2.ip, 15_000))) throw new Error('containers cannot ping each other through tsvtep');
  });
  const h1 = () => lab().hosts[0];
  const h2 = () => lab().hosts[1];
  const c1 = () => lab().container(0);
  const c2 = () => lab().container(1);

  it('100 pings show up as at least 100 frames each way on VNI 100, per peer and in the FDB, on both hosts', async () => {
    const before1 = await scrape(lab(), h1().ns, `${H1_METRICS}/metrics`);
    const before2 = await scrape(lab(), h2().ns, `${H2_METRICS}/metrics`);
    const result = await ping(lab(), c1(), c2().ip, { count: 100, intervalS: 0.01 });
    expect(result.received, result.output).toBe(100);
    const after1 = await scrape(lab(), h1().ns, `${H1_METRICS}/metrics`);
    const after2 = await scrape(lab(), h2().ns, `${H2_METRICS}/metrics`);

    for (const [after, before, peer] of [
      [after1, before1, h2().underlayIp],
      [after2, before2, h1().underlayIp],
    ] as const) {
      expect(delta(after, before, 'tsvtep_overlay_sent_frames_total', vniLabel)).toBeGreaterThanOrEqual(100);
      expect(delta(after, before, 'tsvtep_overlay_received_frames_total', vniLabel)).toBeGreaterThanOrEqual(100);
      expect(delta(after, before, 'tsvtep_overlay_sent_bytes_total', vniLabel)).toBeGreaterThanOrEqual(100 * PING_FRAME_BYTES);
      expect(delta(after, before, 'tsvtep_overlay_received_bytes_total', vniLabel)).toBeGreaterThanOrEqual(100 * PING_FRAME_BYTES);
      expect(delta(after, before, 'tsvtep_overlay_sent_datagrams_total', vniLabel)).toBeGreaterThanOrEqual(100);
      expect(delta(after, before, 'tsvtep_peer_sent_datagrams_total', { peer })).toBeGreaterThanOrEqual(100);
      expect(delta(after, before, 'tsvtep_peer_received_datagrams_total', { peer })).toBeGreaterThanOrEqual(100);
      // The peer counts whole VXLAN payloads: the 8-byte header on top of the frame.
      expect(delta(after, before, 'tsvtep_peer_sent_bytes_total', { peer })).toBeGreaterThanOrEqual(100 * (PING_FRAME_BYTES + 8));
      expect(delta(after, before, 'tsvtep_peer_received_bytes_total', { peer })).toBeGreaterThanOrEqual(100 * (PING_FRAME_BYTES + 8));
      expect(delta(after, before, 'tsvtep_received_datagrams_total')).toBeGreaterThanOrEqual(100);
      expect(after.value('tsvtep_fdb_entries', vniLabel)).toBeGreaterThanOrEqual(1);
      expect(after.value('tsvtep_fdb_learned_total', vniLabel)).toBeGreaterThanOrEqual(1);
      const [[info, one]] = after.series('tsvtep_build_info');
      expect(one).toBe(1);
      expect(info).toEqual({ version: expect.stringMatching(/^\d+\.\d+\.\d+/), nodejs_version: process.versions.node });
    }
    // The very first frames (ARP) were flooded, before the FDB knew the other container.
    expect(after1.value('tsvtep_flooded_frames_total', vniLabel)).toBeGreaterThanOrEqual(1);
  });

  it('malformed datagrams and a stranger are counted as drops by reason, exactly', async () => {
    const topology = lab();
    await topology.execOk(topology.coreNs, ['ip', 'addr', 'add', `${STRANGER_IP}/24`, 'dev', 'sw']);
    const url = `${H1_METRICS}/metrics`;
    const before = await scrape(topology, h1().ns, url);
    const to = h1().underlayIp;
    const good = frame('02:00:00:00:09:99');
    // From host 2, a peer: headers that are not VXLAN, a VNI nobody serves, runts, bad source MACs.
    await sendDatagrams(topology, h2().ns, to, [
      ...times(2, Buffer.concat([vxlanHeader(VNI, 0x00), good])), // I flag not set
      Buffer.from([0x08, 0, 0]), // shorter than a VXLAN header
      ...times(2, Buffer.concat([vxlanHeader(999), good])),
      ...times(4, Buffer.concat([vxlanHeader(VNI), Buffer.alloc(5)])),
      ...times(3, Buffer.concat([vxlanHeader(VNI), frame('01:00:5e:00:00:01')])), // multicast source
      ...times(2, Buffer.concat([vxlanHeader(VNI), frame('00:00:00:00:00:00')])), // all-zero source
    ]);
    // From the switch's namespace: well-formed, but not from a peer.
    await sendDatagrams(topology, topology.coreNs, to, times(6, Buffer.concat([vxlanHeader(VNI), frame('02:00:00:00:09:98')])));

    const expected: [string, Record<string, string>, number][] = [
      ['tsvtep_datagram_drops_total', { reason: 'bad_header' }, 3],
      ['tsvtep_datagram_drops_total', { reason: 'unknown_vni' }, 2],
      ['tsvtep_drops_total', { vni: '100', reason: 'runt' }, 4],
      ['tsvtep_drops_total', { vni: '100', reason: 'bad_frame' }, 5],
      ['tsvtep_drops_total', { vni: '100', reason: 'unknown_sender' }, 6],
    ];
    const after = await scrapeUntil(topology, h1().ns, url, (s) => expected.every(([name, labels, n]) => delta(s, before, name, labels) >= n));
    for (const [name, labels, n] of expected) expect(delta(after, before, name, labels), `${name} ${JSON.stringify(labels)}`).toBe(n);
    expect(delta(after, before, 'tsvtep_received_datagrams_total')).toBeGreaterThanOrEqual(20);
    // The stranger is not a peer and got no series of its own.
    expect(after.get('tsvtep_peer_received_datagrams_total', { peer: STRANGER_IP })).toBeUndefined();
    // Every reason has a series, dropped or not.
    const reasons = after.series('tsvtep_drops_total').map(([labels]) => labels.reason);
    expect(reasons.sort()).toEqual(Object.keys(new NetworkDrops()).sort());
  });

  it('promtool check metrics accepts what both daemons serve, with no warnings', async () => {
    for (const [ns, url] of [
      [h1().ns, `${H1_METRICS}/metrics`],
      [h2().ns, `${H2_METRICS}/metrics`],
    ]) {
      const response = await httpRequest(lab(), ns, url);
      expect(response.status).toBe(200);
      expect(response.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(response.body).toContain('tsvtep_overlay_sent_frames_total{vni="100"}');
      expect(response.body).toContain('process_cpu_seconds_total');
      expect(response.body).toContain('nodejs_eventloop_lag_seconds');
      const result = promtoolCheck(response.body);
      expect(result.output).toBe('');
      expect(result.code).toBe(0);
    }
  });

  it('/healthz is 200 with JSON while the TAP is up, 503 when it is down; anything else is 404', async () => {
    const topology = lab();
    const ns = h1().ns;
    const up = await httpRequest(topology, ns, `${H1_METRICS}/healthz`);
    expect(up.status).toBe(200);
    expect(up.contentType).toMatch(/^application\/json/);
    expect(JSON.parse(up.body)).toEqual({ status: 'up', socket: true, taps: [{ vni: VNI, tap: `tsv${VNI}`, up: true, state: 'UP' }] });

    expect((await httpRequest(topology, ns, `${H1_METRICS}/`)).status).toBe(404);
    expect((await httpRequest(topology, ns, `${H1_METRICS}/nothing`)).status).toBe(404);
    expect((await httpRequest(topology, ns, `${H1_METRICS}/metrics`, 'POST')).status).toBe(405);
    expect((await httpRequest(topology, h2().ns, `${H2_METRICS}/healthz`)).status).toBe(200);

    await topology.execOk(ns, ['ip', 'link', 'set', `tsv${VNI}`, 'down']);
    try {
      const down = await httpRequest(topology, ns, `${H1_METRICS}/healthz`);
      expect(down.status).toBe(503);
      expect(JSON.parse(down.body)).toMatchObject({ status: 'down', socket: true, taps: [{ tap: `tsv${VNI}`, up: false, state: 'DOWN' }] });
    } finally {
      await topology.execOk(ns, ['ip', 'link', 'set', `tsv${VNI}`, 'up']);
    }
    let again = await httpRequest(topology, ns, `${H1_METRICS}/healthz`);
    for (let i = 0; i < 50 && again.status !== 200; i++) {
      await sleep(100);
      again = await httpRequest(topology, ns, `${H1_METRICS}/healthz`);
    }
    expect(again.status).toBe(200);
    expect(await waitForPing(topology, c1(), c2().ip, 15_000)).toBe(true);
  });

  it('a bad --metrics value is a usage error: exit 2, one line', async () => {
    const args = ['--vni', String(VNI), '--bridge', 'br100', '--peer', h2().underlayIp, '--port', '4790', '--tap', 'tsvbad'];
    for (const bad of ['nonsense', '127.0.0.1', '::1:9477', '[::1]', 'localhost:9477', '127.0.0.1:0', '127.0.0.1:70000', '[127.0.0.1]:9477']) {
      const result = await lab().exec(h1().ns, [process.execPath, CLI_PATH, ...args, '--metrics', bad]);
      expect(result.code, bad).toBe(2);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines, bad).toHaveLength(1);
      expect(lines[0], bad).toMatch(/^tsvtep: --metrics: /);
    }
    expect((await lab().exec(h1().ns, ['ip', 'link', 'show', 'tsvbad'])).code).not.toBe(0);
  });

  it('a metrics port in use is a start failure: exit 1, one line, no TAP left behind', async () => {
    const args = ['--vni', String(VNI), '--bridge', 'br100', '--peer', h2().underlayIp, '--port', '4790', '--tap', 'tsvbusy'];
    // Host 1's daemon holds 127.0.0.1:9477.
    const result = await lab().exec(h1().ns, [process.execPath, CLI_PATH, ...args, '--metrics', `127.0.0.1:${METRICS_PORT}`]);
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split('\n')).toEqual([`tsvtep: metrics port ${METRICS_PORT} is in use on 127.0.0.1 (pick another with --metrics)`]);
    expect((await lab().exec(h1().ns, ['ip', 'link', 'show', 'tsvbusy'])).code).not.toBe(0);
    // The running daemon still serves.
    expect((await httpRequest(lab(), h1().ns, `${H1_METRICS}/healthz`)).status).toBe(200);
  });

  it('a Prometheus server scrapes the daemon and answers the per-VNI rate of frames sent', async () => {
    const topology = lab();
    const ns = h1().ns;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsvtep-prometheus-'));
    try {
      writeFileSync(
        path.join(dir, 'prometheus.yml'),
        [
          'global:',
          '  scrape_interval: 1s',
          '  evaluation_interval: 1s',
          'scrape_configs:',
          '  - job_name: tsvtep',
          '    static_configs:',
          `      - targets: ['127.0.0.1:${METRICS_PORT}']`,
          '',
        ].join('\n'),
      );
      const prometheus = topology.spawn(ns, [
        'prometheus',
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`,
        '--log.level=warn',
      ]);
      let prometheusLog = '';
      prometheus.stderr?.setEncoding('utf8');
      prometheus.stderr?.on('data', (chunk: string) => (prometheusLog += chunk));
      prometheus.stdout?.resume();
      // Steady traffic on VNI 100 while Prometheus scrapes: 20 pings a second, for at most a minute.
      const traffic = topology.spawn(c1().ns, ['ping', '-n', '-q', '-i', '0.05', '-c', '1200', c2().ip]);
      traffic.stdout?.resume();
      traffic.stderr?.resume();
      try {
        const query = `rate(tsvtep_overlay_sent_frames_total{vni="${VNI}"}[5s])`;
        const api = `http://127.0.0.1:${PROMETHEUS_PORT}/api/v1/query?query=${encodeURIComponent(query)}`;
        let rate = 0;
        let last = '';
        const end = Date.now() + 60_000;
        while (rate <= 0 && Date.now() < end) {
          if (prometheus.exitCode !== null) throw new Error(`prometheus exited ${prometheus.exitCode}:\n${prometheusLog}`);
          await sleep(1_000);
          try {
            const response = await httpRequest(topology, ns, api);
            last = `${response.status} ${response.body}`;
            if (response.status !== 200) continue;
            const body = JSON.parse(response.body) as { data?: { result?: { metric: Record<string, string>; value: [number, string] }[] } };
            const series = body.data?.result?.[0];
            if (series) {
              expect(series.metric).toMatchObject({ vni: String(VNI), job: 'tsvtep' });
              rate = Number(series.value[1]);
            }
          } catch (error) {
            last = String(error); // not listening yet
          }
        }
        expect(rate, `last answer: ${last}\nprometheus log:\n${prometheusLog}`).toBeGreaterThan(0);
      } finally {
        await stopProcess(traffic, 2_000);
        await stopProcess(prometheus, 10_000);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGTERM with metrics on: the daemon exits 0 and the endpoint is gone with it', async () => {
    expect(await daemons[1].stop()).toBe(0);
    const result = await lab().exec(h2().ns, [process.execPath, '-e', `fetch('${H2_METRICS}/healthz').then(() => process.exit(0), () => process.exit(3))`]);
    expect(result.code).toBe(3);
  });
});
