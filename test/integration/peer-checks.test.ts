// Peers that make no sense (unspecified, multicast, broadcast, link-local
// without a zone, loopback) are usage errors everywhere a peer is given:
// --peer (exit 2, one line, no TAP left), the config file, a reload (the
// daemon keeps its running configuration) and `tsvtep peer add`.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultControlPath } from '../../src/control/endpoint';
import { CLI_PATH, startDaemon } from '../../src/lab/process';
import { useTopology } from '../helpers/lab';

const VNI = 100;
const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-peers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NONSENSE: [string, RegExp][] = [
  ['0.0.0.0', /0\.0\.0\.0 is the unspecified address/],
  ['::', /:: is the unspecified address/],
  ['239.1.1.1', /239\.1\.1\.1 is a multicast group; tsvtep sends to every peer itself \(head-end replication\)/],
  ['ff05::2', /ff05::2 is a multicast group/],
  ['255.255.255.255', /255\.255\.255\.255 is the broadcast address/],
  ['fe80::2', /fe80::2 is a link-local address without a zone/],
  ['127.0.0.2', /127\.0\.0\.2 is a loopback address/],
  ['::1', /::1 is a loopback address/],
];

function expectOneLine(result: { code: number; stderr: string }, code: number, message: RegExp): void {
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tsvtep: /);
  expect(lines[0]).toMatch(message);
  expect(result.code, result.stderr).toBe(code);
}

describe('peer addresses are checked', () => {
  const lab = useTopology({ hosts: 2, vnis: [VNI], ipv6: false });
  const h1 = () => lab().hosts[0];
  const h2 = () => lab().hosts[1];
  const cli = (args: string[]) => lab().exec(h1().ns, [process.execPath, CLI_PATH, ...args]);
  const taps = async (): Promise<string[]> =>
    (JSON.parse((await lab().execOk(h1().ns, ['ip', '-j', 'link', 'show', 'type', 'tun'])).trim() || '[]') as { ifname: string }[]).map((l) => l.ifname);

  for (const [peer, message] of NONSENSE) {
    it(`--peer ${peer} is a usage error`, async () => {
      expectOneLine(await cli(['--vni', String(VNI), '--bridge', 'br100', '--peer', h2().underlayIp, '--peer', peer]), 2, new RegExp(`--peer: ${message.source}`));
      expect(await taps()).toEqual([]);
    });
  }

  it('the subnet broadcast address of this host is refused (exit 1: it depends on the host)', async () => {
    expectOneLine(await cli(['--vni', String(VNI), '--bridge', 'br100', '--peer', '10.0.1.255']), 1, /10\.0\.1\.255 is the broadcast address of 10\.0\.1\.\d+\/24/);
    expect(await taps()).toEqual([]);
  });

  it('in the config file, a usage error naming the file', async () => {
    const file = path.join(dir, 'multicast.yaml');
    writeFileSync(file, `networks:\n  - vni: ${VNI}\n    bridge: br100\n    peers: [${h2().underlayIp}, 239.1.1.1]\n`);
    expectOneLine(await cli(['--config', file]), 2, /multicast\.yaml: networks\[0\]\.peers\[1\]: 239\.1\.1\.1 is a multicast group/);
    expect(await taps()).toEqual([]);
  });

  it('on reload and through peer add: refused, and the daemon keeps running its peers', async () => {
    const file = path.join(dir, 'reload.yaml');
    const write = (peers: string[]) => writeFileSync(file, `networks:\n  - vni: ${VNI}\n    bridge: br100\n    peers: [${peers.map((p) => JSON.stringify(p)).join(', ')}]\n`);
    write([h2().underlayIp]);
    const daemon = await startDaemon(lab(), h1().ns, ['--config', file]);
    try {
      write([h2().underlayIp, '0.0.0.0']);
      expectOneLine(await cli(['reload']), 2, /peers\[1\]: 0\.0\.0\.0 is the unspecified address/);
      for (const [peer, message] of NONSENSE) {
        expectOneLine(await cli(['peer', 'add', peer, '--vni', String(VNI)]), 2, message);
      }
      const peers = JSON.parse((await cli(['peers', '--json'])).stdout) as { peers: { address: string }[] };
      expect(peers.peers.map((p) => p.address)).toEqual([h2().underlayIp]);
      expect(daemon.child.exitCode).toBeNull();
    } finally {
      await daemon.stop();
    }
  });

  it('the daemon refuses them too, for a client that does not check (HTTP 400)', async () => {
    const daemon = await startDaemon(lab(), h1().ns, ['--vni', String(VNI), '--bridge', 'br100', '--peer', h2().underlayIp]);
    try {
      const socket = defaultControlPath(4789, `/run/netns/${h1().ns}`);
      const body = JSON.stringify({ vni: VNI, address: '239.1.1.1' });
      const answer = await lab().execOk(h1().ns, ['curl', '-s', '-w', '\\n%{http_code}', '--unix-socket', socket, '-X', 'POST', '-d', body, 'http://control/peers']);
      const lines = answer.trim().split('\n');
      expect(lines[lines.length - 1]).toBe('400');
      expect(answer).toMatch(/239\.1\.1\.1 is a multicast group/);
    } finally {
      await daemon.stop();
    }
  });
});
