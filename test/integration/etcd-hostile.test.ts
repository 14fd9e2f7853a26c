// Whatever is under the prefix is read by every daemon, so it must survive
// anything written there: malformed keys and values are counted and skipped,
// 100 000 keys cost counters rather than memory, and the real members still
// work.

import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';
import { addressTheSwitch, startEtcd, type EtcdInstance } from '../helpers/etcd';
import { eventually, memoryOf } from '../helpers/hostile';
import { expectPing, useTopology } from '../helpers/lab';
import { scrape } from '../helpers/metrics';

const VNI = 100;
const METRICS = '127.0.0.1:9477';
const ETCD3 = path.resolve(__dirname, '../../node_modules/etcd3');

/** Puts count keys made by makeKey/makeValue (JavaScript expressions of i) in batches of 128, from inside ns. */
async function bulkPut(topology: Topology, ns: string, url: string, count: number, makeKey: string, makeValue: string): Promise<void> {
  const script = `
    const { Etcd3 } = require(${JSON.stringify(ETCD3)});
    const client = new Etcd3({ hosts: ${JSON.stringify(url)} });
    (async () => {
      for (let start = 0; start < ${count}; start += 128) {
        const ops = [];
        for (let i = start; i < Math.min(start + 128, ${count}); i++) ops.push({ request_put: { key: Buffer.from(${makeKey}), value: Buffer.from(${makeValue}) } });
        await client.kv.txn({ success: ops });
      }
      client.close();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  await topology.execOk(ns, [process.execPath, '-e', script], 120_000);
}

describe('hostile keys under the etcd prefix', () => {
  let etcd: EtcdInstance | undefined;
  const daemons: DaemonProcess[] = [];
  const lab = useTopology({ hosts: 2, ipv6: false, vnis: [VNI] }, async (topology) => {
    etcd = await startEtcd(topology, topology.coreNs, await addressTheSwitch(topology));
    for (const h of topology.hosts) {
      const args = ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--etcd', etcd.url, '--metrics', METRICS];
      daemons.push(await startDaemon(topology, h.ns, args));
    }
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await etcd?.destroy();
  });

  const peers = async (topology: Topology): Promise<string[]> =>
    (JSON.parse(await topology.execOk(topology.hosts[0].ns, [process.execPath, CLI_PATH, 'peers', '--json'])) as { peers: { address: string }[] }).peers.map((p) => p.address);

  it('malformed keys are counted by reason and skipped; the members still reach each other', async () => {
    const topology = lab();
    const e = etcd as EtcdInstance;
    expect(await eventually(async () => (await peers(topology)).length === 1, 10_000)).toBe(true);
    const bad: [string, string][] = [
      ['/tsvtep/v1/members/100/10.0.1.77', '{not json'],
      ['/tsvtep/v1/members/100/10.0.1.999', '{"vtep":"10.0.1.999"}'],
      ['/tsvtep/v1/members/100/10.0.1.78', '{"vtep":"10.0.1.79"}'],
      ['/tsvtep/v1/members/99999999/10.0.1.80', '{"vtep":"10.0.1.80"}'],
      ['/tsvtep/v1/members/100/224.0.0.1', '{"vtep":"224.0.0.1"}'],
      ['/tsvtep/whatever', 'x'],
    ];
    for (const [key, value] of bad) await e.ctl(['put', key, value]);
    const samples = async () => scrape(topology, topology.hosts[0].ns, `http://${METRICS}/metrics`);
    expect(
      await eventually(async () => {
        const s = await samples();
        const skipped = (reason: string) => s.value('tsvtep_etcd_skipped_total', { reason });
        return skipped('bad_json') === 1 && skipped('bad_address') === 3 && skipped('vni_out_of_range') === 1 && skipped('bad_key') === 1;
      }, 5_000),
      (await samples()).text.split('\n').filter((l) => l.includes('etcd')).join('\n'),
    ).toBe(true);
    expect(await peers(topology)).toEqual([topology.hosts[1].underlayIp]);
    // Logged once per reason, not per key.
    expect(daemons[0].log().split('\n').filter((l) => l.includes('skipping key')).length).toBe(4);
    await expectPing(topology, topology.container(0), topology.container(1));
  });

  it('100 000 keys (half bad, half well-formed members nobody runs) leave the daemon bounded and working', async () => {
    const topology = lab();
    const e = etcd as EtcdInstance;
    const pid = daemons[0].child.pid as number;
    const before = memoryOf(pid).rssMb;
    await bulkPut(
      topology,
      topology.coreNs,
      e.url,
      100_000,
      "i % 2 ? `/tsvtep/v1/members/100/bad-${i}` : `/tsvtep/v1/members/100/10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`",
      "i % 2 ? 'junk' : JSON.stringify({ vtep: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` })",
    );
    const samples = async () => scrape(topology, topology.hosts[0].ns, `http://${METRICS}/metrics`);
    expect(
      await eventually(async () => {
        const s = await samples();
        return s.value('tsvtep_etcd_members', { vni: String(VNI) }) === 4096 && s.value('tsvtep_etcd_skipped_total', { reason: 'over_limit' }) > 0;
      }, 60_000),
    ).toBe(true);
    expect(daemons[0].child.exitCode).toBeNull();
    const after = memoryOf(pid).rssMb;
    expect(after - before, `RSS ${before} -> ${after} MB`).toBeLessThan(150);
    // The bogus members are in the flood list (they are well-formed), up to the limit, and the real one still answers.
    await expectPing(topology, topology.container(0), topology.container(1));
  });
});
