// Fleet membership through a real etcd: no --peer anywhere. Each tsvtep
// registers its VTEP address for VNI 100 under a lease, watches the prefix
// and keeps its flood list (and the senders it accepts) equal to the others
// registered there.

import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';
import { addressTheSwitch, startEtcd, type EtcdInstance } from '../helpers/etcd';
import { eventually, network, status } from '../helpers/hostile';
import { expectPing, useTopology } from '../helpers/lab';

const VNI = 100;
const TTL_S = 4;

interface PeerRow {
  address: string;
  sources: string[];
}

async function peers(topology: Topology, host: number): Promise<PeerRow[]> {
  const out = await topology.execOk(topology.hosts[host].ns, [process.execPath, CLI_PATH, 'peers', '--json'], 15_000);
  return (JSON.parse(out) as { peers: PeerRow[] }).peers;
}

async function peerAddresses(topology: Topology, host: number): Promise<string[]> {
  return (await peers(topology, host)).map((p) => p.address).sort();
}

describe('membership through etcd, no --peer', () => {
  let etcd: EtcdInstance | undefined;
  const daemons = new Map<number, DaemonProcess>();
  const start = async (topology: Topology, host: number, extra: string[] = []): Promise<DaemonProcess> => {
    const h = topology.hosts[host];
    const daemon = await startDaemon(topology, h.ns, ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--etcd', (etcd as EtcdInstance).url, '--etcd-ttl', String(TTL_S), ...extra]);
    daemons.set(host, daemon);
    expect(await eventually(() => /registered as/.test(daemon.log()), 10_000), daemon.log()).toBe(true);
    return daemon;
  };
  const lab = useTopology({ hosts: 4, ipv6: false, vnis: [VNI] }, async (topology) => {
    const address = await addressTheSwitch(topology);
    etcd = await startEtcd(topology, topology.coreNs, address);
    for (const host of [0, 1, 2]) await start(topology, host);
  });
  afterAll(async () => {
    await Promise.all([...daemons.values()].map((d) => d.stop()));
    await etcd?.destroy();
  });
  const ip = (host: number): string => lab().hosts[host].underlayIp;

  it('three hosts find each other in etcd and their containers reach each other', async () => {
    const topology = lab();
    expect(await eventually(async () => (await peerAddresses(topology, 0)).join() === [ip(1), ip(2)].join(), 5_000)).toBe(true);
    const rows = await peers(topology, 0);
    expect(rows.map((r) => r.sources)).toEqual([['etcd'], ['etcd']]);
    await expectPing(topology, topology.container(0), topology.container(1));
    await expectPing(topology, topology.container(1), topology.container(2));
    await expectPing(topology, topology.container(2), topology.container(0));
    // What etcd holds: one member key per host, each under a lease.
    const keys = (await (etcd as EtcdInstance).ctl(['get', '--prefix', '--keys-only', '/tsvtep/'])).split('\n').filter((k) => k !== '');
    expect(keys.sort()).toEqual([0, 1, 2].map((h) => `/tsvtep/v1/members/${VNI}/${ip(h)}`).sort());
  });

  it('a fourth host joins and is reachable without touching the others', async () => {
    const topology = lab();
    await start(topology, 3);
    for (const host of [0, 1, 2]) {
      expect(await eventually(async () => (await peerAddresses(topology, host)).includes(ip(3)), 5_000), `host ${host + 1}`).toBe(true);
    }
    await expectPing(topology, topology.container(3), topology.container(0));
    await expectPing(topology, topology.container(1), topology.container(3));
  });

  it('a host that stops cleanly leaves at once; one that is killed leaves within the TTL, and what was learned behind it goes with it', async () => {
    const topology = lab();
    await expectPing(topology, topology.container(0), topology.container(2));
    await expectPing(topology, topology.container(0), topology.container(3));
    const fdbOf0 = async (): Promise<string[]> =>
      (JSON.parse(await topology.execOk(topology.hosts[0].ns, [process.execPath, CLI_PATH, 'fdb', 'show', '--json'])) as { entries: { remote: string }[] }).entries.map((e) => e.remote);
    expect(await fdbOf0()).toContain(ip(3));

    await daemons.get(2)?.stop();
    daemons.delete(2);
    expect(await eventually(async () => !(await peerAddresses(topology, 0)).includes(ip(2)), 3_000)).toBe(true);

    // SIGKILL: no goodbye; the lease runs out.
    const killed = daemons.get(3) as DaemonProcess;
    const exited = new Promise((resolve) => killed.child.once('exit', resolve));
    killed.child.kill('SIGKILL');
    await exited;
    daemons.delete(3);
    const since = Date.now();
    expect(await eventually(async () => !(await peerAddresses(topology, 0)).includes(ip(3)) && !(await peerAddresses(topology, 1)).includes(ip(3)), (TTL_S + 3) * 1000)).toBe(true);
    expect(Date.now() - since).toBeLessThan((TTL_S + 3) * 1000);
    expect(await fdbOf0()).not.toContain(ip(3));
    expect(await peerAddresses(topology, 0)).toEqual([ip(1)]);
  });

  it('only registered members are accepted as senders: a host that is not in etcd is dropped', async () => {
    const topology = lab();
    // Host 3 runs with host 1 as a static peer, outside etcd: host 1 does not know it.
    const h = topology.hosts[2];
    const outsider = await startDaemon(topology, h.ns, ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--peer', ip(0)]);
    try {
      await topology.exec(topology.container(2).ns, ['ping', '-c', '3', '-i', '0.2', '-W', '1', topology.container(0).ip]);
      const drops = network(await status(topology, topology.hosts[0].ns), VNI).counters.drops;
      expect(drops.unknown_sender).toBeGreaterThan(0);
    } finally {
      await outsider.stop();
    }
  });

  it('a restarted host is back in the others\' peer lists as soon as it registers', async () => {
    const topology = lab();
    await start(topology, 2);
    expect(await eventually(async () => (await peerAddresses(topology, 0)).includes(ip(2)), 3_000)).toBe(true);
    await expectPing(topology, topology.container(0), topology.container(2));
  });
});

describe('etcd options on the command line', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', timeout: 15_000 });

  it('usage errors are one line and exit 2', () => {
    const cases: [string[], string][] = [
      [['--vni', '100', '--bridge', 'br0', '--etcd-prefix', '/x/'], '--etcd-prefix, --etcd-ttl, --etcd-ca, --etcd-cert, --etcd-key and --etcd-fdb need --etcd URL'],
      [['--vni', '100', '--bridge', 'br0', '--etcd', '10.0.1.1:2379'], '--etcd: 10.0.1.1:2379 is not an etcd URL'],
      [['--vni', '100', '--bridge', 'br0', '--etcd', 'http://10.0.1.1:2379', '--suppress-arp'], '--suppress-arp: needs MAC/IP distribution (--etcd-fdb or --evpn)'],
      [['--vni', '100', '--bridge', 'br0', '--etcd', 'http://10.0.1.1:2379', '--etcd-ttl', '1'], '--etcd-ttl: must be at least 2'],
      [['--vni', '100', '--bridge', 'br0'], '--peer: needs at least one peer (--peer ADDRESS), or --etcd URL'],
    ];
    for (const [args, message] of cases) {
      const result = run(args);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain(message);
    }
  });
});
