// The metrics collectors over plain counters, the health check, the
// --metrics address parser and the HTTP routing, without sockets.

import { describe, expect, it } from 'vitest';
import { register as globalRegistry } from 'prom-client';
import { ConfigError, parseConfig } from '../../src/config';
import { ManualClock } from '../../src/core/clock';
import { EngineCounters, NetworkDrops } from '../../src/core/counters';
import { Fdb } from '../../src/core/fdb';
import { Network } from '../../src/core/network';
import type { FramePort } from '../../src/core/ports';
import { RemoteTable } from '../../src/core/remotes';
import { formatListenAddress, parseListenAddress } from '../../src/core/listen-address';
import { respond, type Reply } from '../../src/metrics-http';
import { checkHealth, createMetricsRegistry, type HealthSource, type MetricsSource } from '../../src/metrics';
import { parseSamples, promtoolCheck } from '../helpers/metrics';

const idlePort: FramePort = {
  readFrames: () => 0,
  writeFrames: () => 0,
};

function fakeDaemon(vnis: number[]): { source: MetricsSource; networks: Network[]; engine: EngineCounters; remotes: RemoteTable } {
  const clock = new ManualClock();
  const remotes = new RemoteTable(4789);
  const networks = vnis.map((vni) => new Network(vni, new Fdb({ clock, maxEntries: 1000 }), idlePort));
  const engine = new EngineCounters();
  const source: MetricsSource = { engine: { counters: engine, allNetworks: () => networks }, remotes };
  return { source, networks, engine, remotes };
}

async function scrape(source: MetricsSource, defaultMetrics = false) {
  const registry = createMetricsRegistry(source, { defaultMetrics });
  return parseSamples(await registry.metrics());
}

describe('metrics registry', () => {
  it('copies the per-VNI counters into labelled series at scrape time', async () => {
    const { source, networks } = fakeDaemon([100, 200]);
    const c = networks[0].counters;
    c.rxFrames = 7;
    c.rxBytes = 700;
    c.txFrames = 5;
    c.txBytes = 500;
    c.txDatagrams = 9;
    c.floodedFrames = 4;
    c.icmpTooBig = 13;
    c.fragmentedFrames = 14;
    c.fdbLearned = 3;
    c.fdbMoved = 2;
    c.fdbAgedOut = 1;
    c.drops.runt = 11;
    c.drops.fdb_full = 12;
    networks[1].counters.rxFrames = 1;
    const s = await scrape(source);
    const vni100 = { vni: '100' };
    expect(s.value('tsvtep_overlay_received_frames_total', vni100)).toBe(7);
    expect(s.value('tsvtep_overlay_received_bytes_total', vni100)).toBe(700);
    expect(s.value('tsvtep_overlay_sent_frames_total', vni100)).toBe(5);
    expect(s.value('tsvtep_overlay_sent_bytes_total', vni100)).toBe(500);
    expect(s.value('tsvtep_overlay_sent_datagrams_total', vni100)).toBe(9);
    expect(s.value('tsvtep_flooded_frames_total', vni100)).toBe(4);
    expect(s.value('tsvtep_icmp_too_big_total', vni100)).toBe(13);
    expect(s.value('tsvtep_fragmented_frames_total', vni100)).toBe(14);
    expect(s.value('tsvtep_fdb_learned_total', vni100)).toBe(3);
    expect(s.value('tsvtep_fdb_moved_total', vni100)).toBe(2);
    expect(s.value('tsvtep_fdb_aged_out_total', vni100)).toBe(1);
    expect(s.value('tsvtep_drops_total', { vni: '100', reason: 'runt' })).toBe(11);
    expect(s.value('tsvtep_drops_total', { vni: '100', reason: 'fdb_full' })).toBe(12);
    expect(s.value('tsvtep_overlay_received_frames_total', { vni: '200' })).toBe(1);
    expect(s.value('tsvtep_fdb_entries', vni100)).toBe(0);
    expect(s.value('tsvtep_fdb_max_entries', vni100)).toBe(1000);
  });

  it('has a series for every drop reason of NetworkDrops on every VNI, zero included', async () => {
    const { source } = fakeDaemon([100, 200]);
    const s = await scrape(source);
    const reasons = Object.keys(new NetworkDrops());
    expect(reasons.length).toBeGreaterThan(0);
    for (const vni of ['100', '200']) {
      for (const reason of reasons) expect(s.value('tsvtep_drops_total', { vni, reason })).toBe(0);
    }
    expect(s.series('tsvtep_drops_total')).toHaveLength(reasons.length * 2);
  });

  it('shows engine-level drops without a vni label, and the datagrams received', async () => {
    const { source, engine } = fakeDaemon([100]);
    engine.drops.bad_header = 3;
    engine.drops.unknown_vni = 4;
    engine.rxDatagrams = 50;
    const s = await scrape(source);
    expect(s.value('tsvtep_datagram_drops_total', { reason: 'bad_header' })).toBe(3);
    expect(s.value('tsvtep_datagram_drops_total', { reason: 'unknown_vni' })).toBe(4);
    expect(s.value('tsvtep_received_datagrams_total')).toBe(50);
  });

  it('has per-peer series labelled with the address', async () => {
    const { source, remotes } = fakeDaemon([100]);
    const a = remotes.add('10.0.1.42');
    const b = remotes.add('fd00:1::42');
    a.counters.rxDatagrams = 1;
    a.counters.rxBytes = 100;
    a.counters.txDatagrams = 2;
    a.counters.txBytes = 200;
    b.counters.txDatagrams = 5;
    const s = await scrape(source);
    expect(s.value('tsvtep_peer_received_datagrams_total', { peer: '10.0.1.42' })).toBe(1);
    expect(s.value('tsvtep_peer_received_bytes_total', { peer: '10.0.1.42' })).toBe(100);
    expect(s.value('tsvtep_peer_sent_datagrams_total', { peer: '10.0.1.42' })).toBe(2);
    expect(s.value('tsvtep_peer_sent_bytes_total', { peer: '10.0.1.42' })).toBe(200);
    expect(s.value('tsvtep_peer_sent_datagrams_total', { peer: 'fd00:1::42' })).toBe(5);
  });

  it('follows the counters from scrape to scrape, and drops series of VNIs and peers that went away', async () => {
    const { source, networks, remotes } = fakeDaemon([100, 200]);
    const peer = remotes.add('10.0.1.42');
    const registry = createMetricsRegistry(source, { defaultMetrics: false });
    networks[0].counters.txFrames = 1;
    let s = parseSamples(await registry.metrics());
    expect(s.value('tsvtep_overlay_sent_frames_total', { vni: '100' })).toBe(1);
    networks[0].counters.txFrames = 1_000_000_000_123;
    networks.splice(1, 1);
    remotes.remove(peer.id);
    s = parseSamples(await registry.metrics());
    expect(s.value('tsvtep_overlay_sent_frames_total', { vni: '100' })).toBe(1_000_000_000_123);
    expect(s.get('tsvtep_overlay_sent_frames_total', { vni: '200' })).toBeUndefined();
    expect(s.get('tsvtep_drops_total', { vni: '200', reason: 'runt' })).toBeUndefined();
    expect(s.series('tsvtep_peer_sent_datagrams_total')).toEqual([]);
  });

  it('has HELP and TYPE on every metric, counters named *_total, and a build info gauge', async () => {
    const { source } = fakeDaemon([100]);
    const s = await scrape(source, true);
    for (const family of s.families.values()) {
      expect(family.help, family.name).toBeTruthy();
      expect(family.type, family.name).toBeTruthy();
      if (family.name.startsWith('tsvtep_')) expect(family.type === 'counter', family.name).toBe(family.name.endsWith('_total'));
    }
    const [[labels, value]] = s.series('tsvtep_build_info');
    expect(value).toBe(1);
    expect(labels.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(labels.nodejs_version).toBe(process.versions.node);
    // Process and Node.js defaults are there, minus the gauges named *_total.
    expect(s.families.has('process_cpu_seconds_total')).toBe(true);
    expect(s.families.has('nodejs_eventloop_lag_seconds')).toBe(true);
    expect(s.families.has('nodejs_active_handles_total')).toBe(false);
  });

  it('uses a registry of its own, not prom-client\'s global one', async () => {
    const before = (await globalRegistry.getMetricsAsJSON()).length;
    const { source } = fakeDaemon([100]);
    createMetricsRegistry(source);
    expect((await globalRegistry.getMetricsAsJSON()).length).toBe(before);
    expect((await globalRegistry.metrics()).includes('tsvtep_')).toBe(false);
  });

  it('passes promtool check metrics with no warnings', async () => {
    const { source, networks, remotes } = fakeDaemon([100, 16_777_215]);
    remotes.add('10.0.1.42').counters.txBytes = 1234;
    networks[0].counters.drops.unknown_sender = 2;
    const registry = createMetricsRegistry(source);
    const result = promtoolCheck(await registry.metrics());
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });
});

describe('health', () => {
  const source = (up: boolean, taps: string[]): HealthSource => ({
    isUp: () => up,
    networks: () => taps.map((tap, i) => ({ vni: 100 + i, tap })),
  });
  const states = (map: Record<string, string>) => async (name: string) => map[name] ?? 'ABSENT';

  it('is up when the socket is open and every TAP is up', async () => {
    const h = await checkHealth(source(true, ['tsv100', 'tsv101']), states({ tsv100: 'UP', tsv101: 'UP' }));
    expect(h).toEqual({
      status: 'up',
      socket: true,
      taps: [
        { vni: 100, tap: 'tsv100', up: true, state: 'UP' },
        { vni: 101, tap: 'tsv101', up: true, state: 'UP' },
      ],
    });
  });

  it('is down when a TAP is down, has no carrier or is gone, when the socket is closed, or when nothing runs', async () => {
    expect((await checkHealth(source(true, ['tsv100', 'tsv101']), states({ tsv100: 'UP', tsv101: 'DOWN' }))).status).toBe('down');
    expect((await checkHealth(source(true, ['tsv100']), states({ tsv100: 'NO-CARRIER' }))).status).toBe('down');
    const gone = await checkHealth(source(true, ['tsv100']), states({}));
    expect(gone.status).toBe('down');
    expect(gone.taps[0]).toEqual({ vni: 100, tap: 'tsv100', up: false, state: 'ABSENT' });
    expect((await checkHealth(source(false, ['tsv100']), states({ tsv100: 'UP' }))).status).toBe('down');
    expect((await checkHealth(source(true, []), states({}))).status).toBe('down');
  });
});

describe('--metrics ADDRESS:PORT', () => {
  it.each([
    ['127.0.0.1:9477', '127.0.0.1', 9477],
    ['0.0.0.0:1', '0.0.0.0', 1],
    ['[::1]:9477', '::1', 9477],
    ['[::]:65535', '::', 65535],
    ['[fd00:1::41]:9477', 'fd00:1::41', 9477],
  ])('accepts %s', (text, host, port) => {
    expect(parseListenAddress(text)).toEqual({ host, port });
    expect(formatListenAddress({ host, port })).toBe(text);
  });

  it.each([
    ['127.0.0.1', /not ADDRESS:PORT/],
    ['9477', /not ADDRESS:PORT/],
    ['', /not ADDRESS:PORT/],
    ['::1:9477', /IPv6 address in brackets/],
    ['[::1]', /not ADDRESS:PORT/],
    ['[127.0.0.1]:9477', /brackets are for IPv6/],
    ['localhost:9477', /localhost is not an IPv4 or IPv6 address/],
    [':9477', /not an IPv4 or IPv6 address/],
    ['127.0.0.1:0', /port 0 is out of range/],
    ['127.0.0.1:65536', /out of range/],
    ['127.0.0.1:http', /not ADDRESS:PORT/],
    ['999.0.0.1:9477', /not an IPv4 or IPv6 address/],
  ])('rejects %j with a message', (text, message) => {
    const result = parseListenAddress(text);
    expect(typeof result).toBe('string');
    expect(result).toMatch(message);
    expect(result as string).not.toContain('\n');
  });
});

describe('metrics in the configuration', () => {
  const network = { vni: 100, bridge: 'br100', peers: ['10.0.1.42'] };

  it('is off unless given, and keeps the address as written', () => {
    expect(parseConfig({ networks: [network] }).metrics).toBeUndefined();
    expect(parseConfig({ metrics: '[::1]:9477', networks: [network] }).metrics).toBe('[::1]:9477');
  });

  it('rejects a bad address naming the field, in one line', () => {
    expect(() => parseConfig({ metrics: 'localhost:9477', networks: [network] })).toThrow(ConfigError);
    expect(() => parseConfig({ metrics: '::1:9477', networks: [network] })).toThrow(/^metrics: ::1:9477: write an IPv6 address in brackets/);
  });
});

describe('HTTP routing', () => {
  const ok = async (): Promise<Reply> => ({ status: 200, contentType: 'text/plain', body: 'ok' });
  const routes = { '/metrics': ok, '/healthz': ok };

  it('answers GET and HEAD on the known paths, ignoring the query string', async () => {
    expect((await respond(routes, 'GET', '/metrics')).status).toBe(200);
    expect((await respond(routes, 'HEAD', '/healthz')).status).toBe(200);
    expect((await respond(routes, 'GET', '/metrics?name[]=x')).status).toBe(200);
  });

  it('answers 404 for anything else, and 405 for other methods on the known paths', async () => {
    for (const path of ['/', '/metrics/', '/Metrics', '/healthz/x', '/favicon.ico', '/constructor', '/__proto__']) {
      expect((await respond(routes, 'GET', path)).status, path).toBe(404);
    }
    const post = await respond(routes, 'POST', '/metrics');
    expect(post.status).toBe(405);
    expect(post.headers).toEqual({ Allow: 'GET, HEAD' });
  });
});
