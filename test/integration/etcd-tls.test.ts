// etcd over TLS with client certificates, made with openssl here: a daemon
// with a certificate from the fleet's CA registers; one with a certificate
// from another CA, or with none, is refused by etcd and says so in one line.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import { addressTheSwitch, makePki, startEtcd, type EtcdInstance, type TestPki } from '../helpers/etcd';
import { eventually } from '../helpers/hostile';
import { useTopology } from '../helpers/lab';

const VNI = 100;

describe('etcd over TLS with client certificates', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-pki-'));
  let pki: TestPki | undefined;
  let etcd: EtcdInstance | undefined;
  const daemons: DaemonProcess[] = [];
  const lab = useTopology({ hosts: 2, ipv6: false, vnis: [VNI] }, async (topology) => {
    const address = await addressTheSwitch(topology);
    pki = await makePki(dir, address);
    etcd = await startEtcd(topology, topology.coreNs, address, { server: pki.server });
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await etcd?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const start = async (host: number, tls: string[]): Promise<DaemonProcess> => {
    const h = lab().hosts[host];
    const daemon = await startDaemon(lab(), h.ns, ['--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--etcd', (etcd as EtcdInstance).url, ...tls]);
    daemons.push(daemon);
    return daemon;
  };

  it('a daemon with a client certificate of the CA registers', async () => {
    const p = pki as TestPki;
    const daemon = await start(0, ['--etcd-ca', p.ca, '--etcd-cert', p.client.cert, '--etcd-key', p.client.key]);
    expect(await eventually(() => /registered as 10\.0\.1\.41/.test(daemon.log()), 10_000), daemon.log()).toBe(true);
    const keys = await (etcd as EtcdInstance).ctl(['get', '--prefix', '--keys-only', '/tsvtep/']);
    expect(keys).toContain(`/tsvtep/v1/members/${VNI}/10.0.1.41`);
  });

  for (const [name, certs] of [
    ['a certificate from another CA', (p: TestPki) => ['--etcd-ca', p.ca, '--etcd-cert', p.rogue.cert, '--etcd-key', p.rogue.key]],
    ['no client certificate', (p: TestPki) => ['--etcd-ca', p.ca]],
  ] as const) {
    it(`a daemon with ${name} is refused and says so in one line`, async () => {
      const daemon = await start(1, certs(pki as TestPki));
      try {
        expect(await eventually(() => /unavailable/.test(daemon.log()), 15_000), daemon.log()).toBe(true);
        const lines = daemon.log().split('\n').filter((l) => l.includes('etcd') && l.includes('"level":40'));
        expect(lines, daemon.log()).toHaveLength(1);
        expect(JSON.parse(lines[0]).msg).toMatch(/unavailable \(etcd refused our TLS client certificate: give --etcd-cert and --etcd-key signed by the CA etcd trusts\)/);
        expect(daemon.log()).not.toMatch(/registered as/);
        const keys = await (etcd as EtcdInstance).ctl(['get', '--prefix', '--keys-only', '/tsvtep/']);
        expect(keys).not.toContain('10.0.1.42');
      } finally {
        await daemon.stop();
        daemons.pop();
      }
    });
  }

  it('a missing key file is a one-line error and exit 1', async () => {
    const p = pki as TestPki;
    const h = lab().hosts[1];
    const result = await lab().exec(h.ns, [process.execPath, CLI_PATH, '--vni', String(VNI), '--bridge', h.bridges.get(VNI) as string, '--etcd', (etcd as EtcdInstance).url, '--etcd-ca', p.ca, '--etcd-cert', p.client.cert, '--etcd-key', '/nonexistent.key']);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n').at(-1)).toBe('tsvtep: --etcd-key /nonexistent.key: no such file');
  });
});
