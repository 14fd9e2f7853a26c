// Issue 3: several networks from one daemon and one UDP port, a config file,
// changes at runtime (SIGHUP and the control interface).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ping, tcpTransfer, waitForPing } from '../../src/lab/checks';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';
import { expectPing, useTopology, waitForTcp } from '../helpers/lab';

const VNIS = [1000, 2000];
const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-multi-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configText(topology: Topology, host: number, peerHosts: number[], vnis = VNIS): string {
  const peers = peerHosts.map((i) => topology.hosts[i].underlayIp);
  const lines = ['networks:'];
  for (const vni of vnis) lines.push(`  - vni: ${vni}`, `    bridge: br${vni}`, `    peers: [${peers.join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

function writeConfig(topology: Topology, host: number, peerHosts: number[], vnis = VNIS): string {
  const file = path.join(dir, `${topology.prefix}-h${host}.yaml`);
  writeFileSync(file, configText(topology, host, peerHosts, vnis));
  return file;
}

async function cli(topology: Topology, host: number, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return topology.exec(topology.hosts[host].ns, [process.execPath, CLI_PATH, ...args]);
}

async function waitForLog(daemon: DaemonProcess, pattern: RegExp, deadlineMs = 10_000): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (pattern.test(daemon.log())) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

describe('two VNIs on two bridges, the same container addresses in both', () => {
  const daemons: DaemonProcess[] = [];
  const topology = useTopology({ hosts: 3, vnis: VNIS }, async (t) => {
    // Hosts 1 and 2 know each other; host 3 joins later.
    for (const [host, peers] of [[0, [1]], [1, [0]], [2, [0, 1]]] as const) {
      daemons.push(await startDaemon(t, t.hosts[host].ns, ['--config', writeConfig(t, host, [...peers])]));
    }
  });

  it('serves both VNIs from one process and one receiving UDP socket', async () => {
    const t = topology();
    const sockets = await t.execOk(t.hosts[0].ns, ['ss', '-uanp']);
    const ours = sockets.split('\n').filter((line) => line.includes(`pid=${daemons[0].child.pid},`));
    // One socket receives on the VXLAN port; the others only send, from random high ports.
    expect(ours.filter((line) => /[:\]]4789\s/.test(line)), sockets).toHaveLength(1);
    expect(ours.filter((line) => !/[:\]]4789\s/.test(line)).every((line) => Number(/:(\d+)\s+\S+:\*/.exec(line)?.[1]) >= 49_152), sockets).toBe(true);
  });

  it('each container reaches its own network and nothing across', async () => {
    const t = topology();
    for (const vni of VNIS) await expectPing(t, t.container(0, vni), t.container(1, vni));
    // 172.18.0.12 exists in both networks: the answer must come from the same VNI.
    // Separate the VNIs' containers by removing VNI 2000's peer container address:
    // with it gone, a ping from VNI 1000 still works, one from VNI 2000 must fail.
    await t.execOk(t.container(1, 2000).ns, ['ip', 'addr', 'del', '172.18.0.12/16', 'dev', 'eth0']);
    try {
      await t.execOk(t.container(0, 2000).ns, ['ip', 'neigh', 'flush', 'all']);
      const across = await ping(t, t.container(0, 2000), '172.18.0.12', { count: 3, timeoutS: 1 });
      expect(across.received, across.output).toBe(0);
      const inside = await ping(t, t.container(0, 1000), '172.18.0.12', { count: 3 });
      expect(inside.received, inside.output).toBe(3);
    } finally {
      await t.execOk(t.container(1, 2000).ns, ['ip', 'addr', 'add', '172.18.0.12/16', 'dev', 'eth0']);
    }
    // A frame of VNI 1000 never shows up on VNI 2000's bridge: its containers' MACs
    // are learned only on VNI 1000.
    const fdb = await cli(t, 0, ['fdb', 'show', '--vni', '2000']);
    expect(fdb.code, fdb.stderr).toBe(0);
    expect(fdb.stdout).not.toContain(t.container(1, 1000).mac);
    expect((await cli(t, 0, ['fdb', 'show', '--vni', '1000'])).stdout).toContain(t.container(1, 1000).mac);
  });

  it('adds a third host on SIGHUP while a transfer on the other VNI keeps going', async () => {
    const t = topology();
    expect(await waitForPing(t, t.container(0, 1000), t.container(2, 1000).ip, 2_000)).toBe(false);
    const transfer = tcpTransfer(t, t.container(0, 2000), t.container(1, 2000), { bytes: 200 * 1024 * 1024, port: 5002, timeoutMs: 90_000 });
    // SIGHUP once the transfer is under way, so the reload happens during it.
    expect(await waitForTcp(t, t.container(1, 2000).ns, 5002, 'established'), 'the transfer did not start').toBe(true);
    writeConfig(t, 0, [1, 2]);
    writeConfig(t, 1, [0, 2]);
    daemons[0].child.kill('SIGHUP');
    daemons[1].child.kill('SIGHUP');
    expect(await waitForLog(daemons[0], /peer 10\.0\.1\.43 added/)).toBe(true);
    await expectPing(t, t.container(0, 1000), t.container(2, 1000));
    await expectPing(t, t.container(1, 2000), t.container(2, 2000));
    const result = await transfer;
    expect(result.receivedBytes).toBe(result.bytes);
    expect(result.receivedSha256).toBe(result.sentSha256);
  });

  it('keeps running on the old config when the file is broken on reload', async () => {
    const t = topology();
    writeFileSync(path.join(dir, `${t.prefix}-h0.yaml`), 'networks:\n  - vni: [1000\n');
    daemons[0].child.kill('SIGHUP');
    expect(await waitForLog(daemons[0], /reload failed, keeping the running configuration/)).toBe(true);
    expect(daemons[0].child.exitCode).toBeNull();
    await expectPing(t, t.container(0, 1000), t.container(1, 1000));
    const status = await cli(t, 0, ['status', '--json']);
    expect(JSON.parse(status.stdout).networks.map((n: { vni: number }) => n.vni).sort()).toEqual(VNIS);
  });

  it('removes a network on reload and deletes its TAP', async () => {
    const t = topology();
    writeConfig(t, 2, [0, 1], [1000]);
    const reload = await cli(t, 2, ['reload']);
    expect(reload.code, reload.stderr).toBe(0);
    expect(reload.stdout).toContain('VNI 2000 removed');
    const taps = await t.execOk(t.hosts[2].ns, ['ip', '-o', 'link', 'show', 'type', 'tun']);
    expect(taps).toContain('tsv1000');
    expect(taps).not.toContain('tsv2000');
    await expectPing(t, t.container(2, 1000), t.container(0, 1000));
  });

  it('changes peers and static entries through the control interface', async () => {
    const t = topology();
    const del = await cli(t, 0, ['peer', 'del', t.hosts[1].underlayIp, '--vni', '1000']);
    expect(del.code, del.stderr).toBe(0);
    const peers = JSON.parse((await cli(t, 0, ['peers', '--vni', '1000', '--json'])).stdout) as { peers: { address: string }[] };
    expect(peers.peers.map((p) => p.address)).toEqual([t.hosts[2].underlayIp]);
    const add = await cli(t, 0, ['peer', 'add', t.hosts[1].underlayIp, '--vni', '1000']);
    expect(add.code, add.stderr).toBe(0);
    await expectPing(t, t.container(0, 1000), t.container(1, 1000));

    const mac = '02:99:00:00:00:01';
    expect((await cli(t, 0, ['fdb', 'add', mac, '--vni', '1000', '--dst', t.hosts[1].underlayIp])).code).toBe(0);
    expect((await cli(t, 0, ['fdb', 'show', '--vni', '1000'])).stdout).toContain(`${mac} dev tsv1000 dst ${t.hosts[1].underlayIp} vni 1000 self static`);
    const notPeer = await cli(t, 0, ['fdb', 'add', mac, '--vni', '1000', '--dst', '10.0.1.99']);
    expect(notPeer.code).toBe(1);
    expect(notPeer.stderr).toMatch(/^tsvtep: 10\.0\.1\.99 is not a peer of VNI 1000/);
    expect((await cli(t, 0, ['fdb', 'del', mac, '--vni', '1000'])).code).toBe(0);
    const unknownVni = await cli(t, 0, ['peers', '--vni', '1000', '--control', '/nonexistent/x.sock']);
    expect(unknownVni.code).toBe(1);
    expect(unknownVni.stderr).toContain('no tsvtep is running here');
  });

  it('on reload restarts a network whose TAP changed, changes another in place, and skips a change that fails', async () => {
    const t = topology();
    const [h1, h2] = [t.hosts[1].underlayIp, t.hosts[2].underlayIp];
    const mac = '02:99:00:00:00:02';
    writeFileSync(
      path.join(dir, `${t.prefix}-h0.yaml`),
      [
        'networks:',
        `  - {vni: 1000, bridge: br1000, tap: tsv1000b, peers: [${h1}, ${h2}]}`,
        `  - {vni: 2000, bridge: br2000, peers: [${h1}, ${h2}], ageingSeconds: 60, static: [{mac: '${mac}', remote: ${h1}}]}`,
        `  - {vni: 3000, bridge: br3000, peers: [${h1}]}`,
        '',
      ].join('\n'),
    );
    const reload = await cli(t, 0, ['reload']);
    expect(reload.code, reload.stderr).toBe(0);
    expect(reload.stdout).toContain('VNI 1000 restarted');
    expect(reload.stdout).toContain('VNI 2000: ageing 60s');
    expect(reload.stdout).toContain(`VNI 2000: static ${mac} -> ${h1}`);
    expect(reload.stdout).not.toContain('VNI 3000');
    expect(await waitForLog(daemons[0], /VNI 3000: change failed: bridge br3000 does not exist/), daemons[0].log()).toBe(true);

    const taps = await t.execOk(t.hosts[0].ns, ['ip', '-o', 'link', 'show', 'type', 'tun']);
    expect(taps).toContain('tsv1000b');
    expect(taps).not.toMatch(/tsv1000:/);
    const status = JSON.parse((await cli(t, 0, ['status', '--json'])).stdout) as { networks: { vni: number; tap: string; ageingSeconds: number }[] };
    expect(status.networks.map((n) => [n.vni, n.tap, n.ageingSeconds]).sort()).toEqual([
      [1000, 'tsv1000b', 300],
      [2000, 'tsv2000', 60],
    ]);
    expect((await cli(t, 0, ['fdb', 'show', '--vni', '2000'])).stdout).toContain(`${mac} dev tsv2000 dst ${h1} vni 2000 self static`);
    await expectPing(t, t.container(0, 1000), t.container(1, 1000));
    await expectPing(t, t.container(0, 2000), t.container(1, 2000));
  });
});

describe('config file errors at start', () => {
  const topology = useTopology({ hosts: 2, vnis: [1000] });

  it('an invalid config exits 2 with the field and the problem, and creates nothing', async () => {
    const t = topology();
    const file = path.join(dir, `${t.prefix}-dup.yaml`);
    writeFileSync(file, 'networks:\n  - {vni: 1000, bridge: br1000, peers: [10.0.1.42]}\n  - {vni: 1000, bridge: br1000, tap: other, peers: [10.0.1.42]}\n');
    const result = await cli(t, 0, ['--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('networks[1].vni: VNI 1000 appears twice');
    expect(await t.execOk(t.hosts[0].ns, ['ip', '-o', 'link', 'show', 'type', 'tun'])).toBe('');
  });

  it('network flags next to --config are a usage error', async () => {
    const t = topology();
    const result = await cli(t, 0, ['--config', '/dev/null', '--vni', '5']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('with --config, put networks in the file');
  });
});
