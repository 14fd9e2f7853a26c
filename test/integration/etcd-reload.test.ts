// A network added to the config file of a daemon that uses etcd is announced
// there on reload, and its members are found, with no restart.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';
import { addressTheSwitch, startEtcd, type EtcdInstance } from '../helpers/etcd';
import { eventually } from '../helpers/hostile';
import { expectPing, useTopology } from '../helpers/lab';

const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-etcd-reload-'));

function writeConfig(url: string, host: number, vnis: number[]): string {
  const file = path.join(dir, `h${host}.yaml`);
  writeFileSync(file, `etcd: {endpoints: ["${url}"]}\nnetworks:\n${vnis.map((vni) => `  - {vni: ${vni}, bridge: br${vni}}\n`).join('')}`);
  return file;
}

async function peersOf(topology: Topology, host: number, vni: number): Promise<string[]> {
  const out = await topology.execOk(topology.hosts[host].ns, [process.execPath, CLI_PATH, 'peers', '--json', '--vni', String(vni)]);
  return (JSON.parse(out) as { peers: { address: string }[] }).peers.map((p) => p.address);
}

describe('etcd and a reloaded config file', () => {
  let etcd: EtcdInstance | undefined;
  const daemons: DaemonProcess[] = [];
  const lab = useTopology({ hosts: 2, ipv6: false, vnis: [100, 200] }, async (topology) => {
    etcd = await startEtcd(topology, topology.coreNs, await addressTheSwitch(topology));
    for (const h of topology.hosts) daemons.push(await startDaemon(topology, h.ns, ['--config', writeConfig(etcd.url, h.index, [100])]));
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await etcd?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a VNI added by reload is registered and finds its members', async () => {
    const topology = lab();
    expect(await eventually(async () => (await peersOf(topology, 0, 100)).length === 1, 10_000)).toBe(true);
    for (const h of topology.hosts) {
      writeConfig((etcd as EtcdInstance).url, h.index, [100, 200]);
      await topology.execOk(h.ns, [process.execPath, CLI_PATH, 'reload']);
    }
    expect(await eventually(async () => (await peersOf(topology, 0, 200)).join() === topology.hosts[1].underlayIp, 10_000)).toBe(true);
    await expectPing(topology, topology.container(0, 200), topology.container(1, 200));
    await expectPing(topology, topology.container(0, 100), topology.container(1, 100));
    const keys = await (etcd as EtcdInstance).ctl(['get', '--prefix', '--keys-only', '/tsvtep/v1/members/200/']);
    expect(keys.split('\n').filter((k) => k !== '').length).toBe(2);
  });
});
