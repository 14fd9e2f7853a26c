// etcd going away and coming back: forwarding goes on with the last known
// members, the outage is logged once and shown in metrics and /healthz, and
// the daemons catch up when etcd returns, with no restart.

import { afterAll, describe, expect, it } from 'vitest';
import { ping } from '../../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';
import { addressTheSwitch, startEtcd, type EtcdInstance } from '../helpers/etcd';
import { eventually, sleep } from '../helpers/hostile';
import { expectPing, useTopology } from '../helpers/lab';
import { httpRequest, promtoolCheck, scrape } from '../helpers/metrics';

const VNI = 100;
const TTL_S = 4;
const METRICS = '127.0.0.1:9477';

async function peerAddresses(topology: Topology, host: number): Promise<string[]> {
  const out = await topology.execOk(topology.hosts[host].ns, [process.execPath, CLI_PATH, 'peers', '--json'], 15_000);
  return (JSON.parse(out) as { peers: { address: string }[] }).peers.map((p) => p.address).sort();
}

describe('etcd unavailable', () => {
  let etcd: EtcdInstance | undefined;
  const daemons = new Map<number, DaemonProcess>();
  const start = async (topology: Topology, host: number): Promise<DaemonProcess> => {
    const h = topology.hosts[host];
    const args = ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--etcd', (etcd as EtcdInstance).url, '--etcd-ttl', String(TTL_S), '--metrics', METRICS];
    const daemon = await startDaemon(topology, h.ns, args);
    daemons.set(host, daemon);
    return daemon;
  };
  const lab = useTopology({ hosts: 3, ipv6: false, vnis: [VNI] }, async (topology) => {
    etcd = await startEtcd(topology, topology.coreNs, await addressTheSwitch(topology));
    for (const host of [0, 1]) await start(topology, host);
  });
  afterAll(async () => {
    await Promise.all([...daemons.values()].map((d) => d.stop()));
    await etcd?.destroy();
  });
  const ip = (host: number): string => lab().hosts[host].underlayIp;
  const metrics = (host: number) => scrape(lab(), lab().hosts[host].ns, `http://${METRICS}/metrics`);
  const outageLines = (daemon: DaemonProcess): string[] => daemon.log().split('\n').filter((l) => l.includes('unavailable') && l.includes('"level":40'));

  it('with etcd up: members in metrics and /healthz', async () => {
    const topology = lab();
    expect(await eventually(async () => (await peerAddresses(topology, 0)).join() === ip(1), 10_000)).toBe(true);
    const samples = await metrics(0);
    expect(samples.value('tsvtep_etcd_up')).toBe(1);
    expect(samples.value('tsvtep_etcd_members', { vni: String(VNI) })).toBe(1);
    const lint = promtoolCheck(samples.text);
    expect(lint.code, lint.output).toBe(0);
    const health = JSON.parse((await httpRequest(topology, topology.hosts[0].ns, `http://${METRICS}/healthz`)).body) as { controlPlane: { up: boolean } };
    expect(health.controlPlane.up).toBe(true);
    await expectPing(topology, topology.container(0), topology.container(1));
  });

  it('etcd stopped for 20 s: forwarding goes on, the outage is logged once and shown; a host added meanwhile is picked up when etcd is back', async () => {
    const topology = lab();
    const e = etcd as EtcdInstance;
    await e.stop();
    // 20 s of pings, 2 a second, while etcd is away.
    const during = ping(topology, topology.container(0), topology.container(1).ip, { count: 40, intervalS: 0.5 });
    expect(await eventually(async () => (await metrics(0)).value('tsvtep_etcd_up') === 0, 15_000)).toBe(true);
    const health = await httpRequest(topology, topology.hosts[0].ns, `http://${METRICS}/healthz`);
    const body = JSON.parse(health.body) as { status: string; controlPlane: { up: boolean; lastError?: string } };
    expect(body.controlPlane.up).toBe(false);
    expect(body.controlPlane.lastError).toBeTruthy();
    // The data plane is fine: the health check says so.
    expect(health.status).toBe(200);
    // A host that starts while etcd is away runs, with no peers yet.
    const late = await start(topology, 2);
    expect(await eventually(() => outageLines(late).length > 0, 10_000), late.log()).toBe(true);
    const result = await during;
    expect(result.received, result.output).toBe(result.sent);
    expect(result.sent).toBe(40);
    expect(await peerAddresses(topology, 0)).toEqual([ip(1)]);

    await e.start();
    for (const host of [0, 1]) {
      expect(await eventually(async () => (await peerAddresses(topology, host)).includes(ip(2)), 15_000), `host ${host + 1}`).toBe(true);
    }
    expect(await eventually(async () => (await peerAddresses(topology, 2)).join() === [ip(0), ip(1)].join(), 15_000)).toBe(true);
    await expectPing(topology, topology.container(2), topology.container(0));
    const samples = await metrics(0);
    expect(samples.value('tsvtep_etcd_up')).toBe(1);
    expect(samples.value('tsvtep_etcd_members', { vni: String(VNI) })).toBe(2);
    expect(samples.value('tsvtep_etcd_session_restarts_total')).toBeGreaterThanOrEqual(1);
    for (const host of [0, 1]) {
      const daemon = daemons.get(host) as DaemonProcess;
      expect(outageLines(daemon), daemon.log()).toHaveLength(1);
      expect(daemon.log()).toMatch(/back after \d+ s, caught up/);
    }
  });

  it('a member whose lease ran out while this host was cut off from etcd is gone when it reconnects', async () => {
    const topology = lab();
    const h1 = topology.hosts[0].ns;
    const cut = ['iptables', '-w', '-I', 'OUTPUT', '-d', '10.0.1.1', '-p', 'tcp', '--dport', '2379', '-j', 'DROP'];
    await topology.execOk(h1, cut);
    try {
      expect(await eventually(async () => (await metrics(0)).value('tsvtep_etcd_up') === 0, 15_000)).toBe(true);
      // Host 3 dies without a goodbye; its lease runs out while host 1 cannot hear of it.
      const victim = daemons.get(2) as DaemonProcess;
      const exited = new Promise((resolve) => victim.child.once('exit', resolve));
      victim.child.kill('SIGKILL');
      await exited;
      daemons.delete(2);
      expect(await eventually(async () => !(await peerAddresses(topology, 1)).includes(ip(2)), (TTL_S + 3) * 1000)).toBe(true);
      await sleep(500);
      expect(await peerAddresses(topology, 0)).toContain(ip(2));
    } finally {
      await topology.execOk(h1, ['iptables', '-w', '-D', ...cut.slice(3)]);
    }
    expect(await eventually(async () => (await peerAddresses(topology, 0)).join() === ip(1), 15_000)).toBe(true);
    // Host 1's own lease ran out too: it registered again, and host 2 has it back.
    expect(await eventually(async () => (await peerAddresses(topology, 1)).includes(ip(0)), 10_000)).toBe(true);
    await expectPing(topology, topology.container(0), topology.container(1));
  });
});
