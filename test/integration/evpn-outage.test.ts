// Issue 17, gobgpd missing, crashed and back: tsvtep starts before its gobgpd
// exists and says so once; forwarding goes on with the last state while
// gobgpd is gone (host 2 also has host 1 as a static --peer, which stays when
// host 1's routes are withdrawn: static and EVPN peers side by side);
// tsvtep reconnects with backoff, announces everything again, and /metrics and
// /healthz show the state throughout. GoBGP's API files missing: one line
// naming the Debian package, exit 1, no TAP left behind.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ping } from '../../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import { Topology } from '../../src/lab/topology';
import { GOBGP_API, sleep, startGobgpd, type Gobgpd } from '../helpers/gobgp';
import { expectPing } from '../helpers/lab';
import { httpRequest, scrape } from '../helpers/metrics';

const VNI = 100;
const METRICS = '127.0.0.1:9477';

describe('BGP EVPN while gobgpd is missing, crashes and comes back', () => {
  let topology: Topology;
  const gobgpds: Gobgpd[] = [];
  const daemons: DaemonProcess[] = [];

  const ns = (host: number) => topology.hosts[host].ns;
  const peerRows = async (host: number): Promise<{ address: string; sources: string[] }[]> =>
    (JSON.parse(await topology.execOk(ns(host), [process.execPath, CLI_PATH, 'peers', '--json'], 15_000)) as { peers: { address: string; sources: string[] }[] }).peers;
  const peers = async (host: number): Promise<string[]> => (await peerRows(host)).map((p) => p.address);
  const health = async (host: number) => JSON.parse((await httpRequest(topology, ns(host), `http://${METRICS}/healthz`)).body) as {
    status: string;
    controlPlane?: { origin: string; up: boolean; lastError?: string; members: Record<string, number> };
  };
  const until = async (what: string, check: () => Promise<boolean>, deadlineMs = 30_000): Promise<void> => {
    const end = Date.now() + deadlineMs;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
      await sleep(250);
    }
  };
  const startVtep = (host: number, extra: string[] = []): Promise<DaemonProcess> => {
    const h = topology.hosts[host];
    return startDaemon(topology, h.ns, ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--local', h.underlayIp, '--evpn', GOBGP_API, '--metrics', METRICS, ...extra]);
  };

  beforeAll(async () => {
    topology = await Topology.create({ hosts: 2, ipv6: false });
    const [h1, h2] = topology.hosts;
    gobgpds.push(await startGobgpd(topology, h1.ns, h1.underlayIp, [h2.underlayIp], { deferStart: true }));
    gobgpds.push(await startGobgpd(topology, h2.ns, h2.underlayIp, [h1.underlayIp]));
    daemons.push(await startVtep(0), await startVtep(1, ['--peer', h1.underlayIp]));
  }, 60_000);

  afterAll(async () => {
    if (process.env.EVPN_DEBUG) {
      for (const g of gobgpds) console.log(g.ns, g.log().slice(-3000), (await topology.exec(g.ns, ['gobgp', 'neighbor', g === gobgpds[0] ? topology.hosts[1].underlayIp : topology.hosts[0].underlayIp])).stdout);
    }
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(gobgpds.map((g) => g.stop()));
    await topology?.destroy();
  });

  it('starts without its gobgpd: one line saying so, down in /healthz and /metrics, forwarding up', async () => {
    await until('host 1 logs that gobgpd is unreachable', async () => /EVPN: gobgpd at/.test(daemons[0].log()));
    await sleep(1_500); // a few retries
    const lines = daemons[0].log().split('\n').filter((line) => line.includes('EVPN: gobgpd at'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/unreachable: .*\(is gobgpd running\? Debian: apt-get install gobgpd; --evpn names its API address\); forwarding with the last state, retrying/);
    const h = await health(0);
    expect(h.status).toBe('up');
    expect(h.controlPlane).toMatchObject({ origin: 'evpn', up: false });
    expect(h.controlPlane?.lastError).toBeTruthy();
    const samples = await scrape(topology, ns(0), `http://${METRICS}/metrics`);
    expect(samples.value('tsvtep_evpn_up')).toBe(0);
    expect(samples.value('tsvtep_evpn_session_restarts_total')).toBeGreaterThan(0);
  });

  it('picks gobgpd up when it starts, with no restart of its own', async () => {
    await gobgpds[0].start();
    await gobgpds[0].waitEstablished();
    await until('host 1 has host 2 as a peer', async () => (await peers(0)).includes(topology.hosts[1].underlayIp), 20_000);
    await until('host 2 has host 1 from EVPN too', async () => (await peerRows(1))[0]?.sources.includes('evpn') === true, 20_000);
    expect(await peerRows(1)).toEqual([expect.objectContaining({ address: topology.hosts[0].underlayIp, sources: ['evpn', 'static'] })]);
    expect(await peerRows(0)).toEqual([expect.objectContaining({ address: topology.hosts[1].underlayIp, sources: ['evpn'] })]);
    expect(daemons[0].log()).toMatch(/EVPN: gobgpd at 127\.0\.0\.1:50051 connected/);
    const samples = await scrape(topology, ns(0), `http://${METRICS}/metrics`);
    expect(samples.value('tsvtep_evpn_up')).toBe(1);
    expect(samples.value('tsvtep_evpn_members', { vni: String(VNI) })).toBe(1);
    expect(samples.value('tsvtep_evpn_announced')).toBeGreaterThanOrEqual(1);
    expect((await health(0)).controlPlane).toEqual({ origin: 'evpn', up: true, members: { [VNI]: 1 } });
    await expectPing(topology, topology.container(0), topology.container(1));
  });

  it('forwards with the last state while gobgpd is gone, logs it once, and announces everything again when it is back', async () => {
    const [c1, c2] = [topology.container(0), topology.container(1)];
    const logBefore = daemons[0].log().length;
    await gobgpds[0].kill();
    await until('host 1 sees gobgpd gone', async () => (await health(0)).controlPlane?.up === false, 10_000);
    // Host 1 keeps its EVPN state; host 2 drops host 1's routes but keeps its static peer.
    await until('host 2 keeps host 1 as static peer only', async () => (await peerRows(1))[0]?.sources.join() === 'static', 20_000);
    for (let i = 0; i < 3; i++) {
      const result = await ping(topology, c1, c2.ip, { count: 3 });
      expect(result.received, result.output).toBe(3);
      await sleep(500);
    }
    expect(await peerRows(0)).toEqual([expect.objectContaining({ address: topology.hosts[1].underlayIp, sources: ['evpn'] })]);
    expect(daemons[0].log().slice(logBefore).split('\n').filter((line) => line.includes('EVPN: gobgpd at')).length).toBe(1);
    expect(daemons[0].log().slice(logBefore)).toMatch(/EVPN: gobgpd at 127\.0\.0\.1:50051 lost: .*forwarding with the last state, retrying/);

    await gobgpds[0].start();
    await until('host 1 is back', async () => (await health(0)).controlPlane?.up === true, 30_000);
    expect(daemons[0].log()).toMatch(/EVPN: gobgpd at 127\.0\.0\.1:50051 is back: \d+ route\(s\) announced/);
    await gobgpds[0].waitEstablished();
    // Its routes are in gobgpd again (announced anew after the crash) and reach host 2.
    await until('host 1 routes are in its gobgpd again', async () => (await gobgpds[0].rib()).includes(`[mac:${c1.mac}]`), 20_000);
    await until('host 2 has host 1 from EVPN again', async () => (await peerRows(1))[0]?.sources.join() === 'evpn,static', 20_000);
    await expectPing(topology, c2, c1);
  });

  it("GoBGP's API files missing: one line naming the Debian package, exit 1, no TAP created", async () => {
    const h = topology.hosts[0];
    const result = await topology.exec(h.ns, [
      'env',
      'GOBGP_PROTO_DIR=/nonexistent/gobgp/api',
      process.execPath,
      CLI_PATH,
      '--vni',
      '200',
      '--bridge',
      h.bridges.get(VNI) as string,
      '--tap',
      'tsvnoproto',
      '--local',
      h.underlayIp,
      '--port',
      '4799',
      '--evpn',
      GOBGP_API,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      "tsvtep: GoBGP's API files (gobgp.proto, attribute.proto) are not in /nonexistent/gobgp/api (apt-get install golang-github-osrg-gobgp-dev, or set GOBGP_PROTO_DIR)",
    ]);
    expect((await topology.exec(h.ns, ['ip', 'link', 'show', 'tsvnoproto'])).code).not.toBe(0);
  });
});
