// Issue 17, EVPN and networks that come and go: a VNI removed by a reload of
// the config file is withdrawn (its type-3 route leaves the fabric and the
// other host's flood list), and added again, it is announced and imported
// again.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import { Topology } from '../../src/lab/topology';
import { GOBGP_API, sleep, startGobgpd, type Gobgpd } from '../helpers/gobgp';
import { expectPing } from '../helpers/lab';

describe('BGP EVPN with networks removed and added by reload', () => {
  let topology: Topology;
  let dir: string;
  const gobgpds: Gobgpd[] = [];
  const daemons: DaemonProcess[] = [];

  const configFile = (host: number) => path.join(dir, `h${host + 1}.yaml`);
  const writeConfig = (host: number, vnis: number[]) => {
    const h = topology.hosts[host];
    const networks = vnis.map((vni) => `  - { vni: ${vni}, bridge: br${vni} }`).join('\n');
    writeFileSync(configFile(host), `local: ${h.underlayIp}\nevpn: { api: "${GOBGP_API}" }\nnetworks:\n${networks}\n`);
  };
  const cli = (host: number, args: string[]) => topology.execOk(topology.hosts[host].ns, [process.execPath, CLI_PATH, ...args], 15_000);
  const peersOf = async (host: number, vni: number): Promise<string[]> =>
    (JSON.parse(await cli(host, ['peers', '--vni', String(vni), '--json'])) as { peers: { address: string }[] }).peers.map((p) => p.address);
  const until = async (what: string, check: () => Promise<boolean>, deadlineMs = 20_000): Promise<void> => {
    const end = Date.now() + deadlineMs;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
      await sleep(250);
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-evpn-vnis-'));
    topology = await Topology.create({ hosts: 2, vnis: [100, 200], ipv6: false });
    const [h1, h2] = topology.hosts;
    gobgpds.push(await startGobgpd(topology, h1.ns, h1.underlayIp, [h2.underlayIp]));
    gobgpds.push(await startGobgpd(topology, h2.ns, h2.underlayIp, [h1.underlayIp]));
    await Promise.all(gobgpds.map((g) => g.waitEstablished()));
    for (const host of [0, 1]) {
      writeConfig(host, [100, 200]);
      daemons.push(await startDaemon(topology, topology.hosts[host].ns, ['--config', configFile(host)]));
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(gobgpds.map((g) => g.stop()));
    await topology?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a VNI removed by reload is withdrawn from the fabric, and added again it is back on both sides', async () => {
    const [h1, h2] = topology.hosts;
    const type3 = (vniIndex: number) => `[type:multicast][rd:${h1.underlayIp}:${vniIndex}]`;
    await until('host 2 has host 1 in VNI 200', async () => (await peersOf(1, 200)).includes(h1.underlayIp));
    expect(await gobgpds[1].rib()).toContain(type3(2));

    writeConfig(0, [100]);
    await cli(0, ['reload']);
    await until('host 2 no longer has host 1 in VNI 200', async () => (await peersOf(1, 200)).length === 0);
    // Of host 1's type-3 routes only VNI 100's is left.
    const host1Type3 = (await gobgpds[1].rib()).split('\n').filter((line) => line.includes(`tunnel-id: ${h1.underlayIp}`));
    expect(host1Type3).toHaveLength(1);
    expect(host1Type3[0]).toContain('label: 100,');
    expect(await peersOf(1, 100)).toEqual([h1.underlayIp]);

    writeConfig(0, [100, 200]);
    await cli(0, ['reload']);
    await until('host 2 has host 1 in VNI 200 again', async () => (await peersOf(1, 200)).includes(h1.underlayIp));
    await until('host 1 has host 2 in VNI 200 again', async () => (await peersOf(0, 200)).includes(h2.underlayIp));
    await expectPing(topology, topology.container(0, 200), topology.container(1, 200));
  });
});
