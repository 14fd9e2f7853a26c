// The TCP control port needs a bearer token: a local user who is not root
// (nobody, with curl: the checkout may not be readable by nobody) gets 401
// on every endpoint, each counted; root's CLI reads the token file and works;
// --control-token-file gives the token instead. The Unix socket is unchanged.

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tokenFilePath } from '../../src/control/token-file';
import { CLI_PATH, startDaemon } from '../../src/lab/process';
import { useTopology } from '../helpers/lab';

const VNI = 100;
const PORT = 7702;
const CONTROL = `127.0.0.1:${PORT}`;
const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every endpoint, with a body where it takes one. */
const ENDPOINTS: [string, string, string?][] = [
  ['GET', '/networks'],
  ['GET', '/peers'],
  ['GET', '/fdb'],
  ['POST', '/peers', JSON.stringify({ vni: VNI, address: '10.0.1.77' })],
  ['DELETE', '/peers?vni=100&address=10.0.1.42'],
  ['POST', '/fdb', JSON.stringify({ vni: VNI, mac: '02:00:00:00:00:99', remote: '10.0.1.42' })],
  ['DELETE', '/fdb?vni=100&mac=02:00:00:00:00:99'],
  ['POST', '/reload'],
  ['GET', '/no-such-endpoint'],
];

describe('the TCP control port needs a bearer token', () => {
  const lab = useTopology({ hosts: 2, vnis: [VNI], ipv6: false });
  const h1 = () => lab().hosts[0];
  const args = (...more: string[]) => ['--vni', String(VNI), '--bridge', 'br100', '--peer', lab().hosts[1].underlayIp, '--control', CONTROL, ...more];
  const cli = (more: string[], user: string[] = []) => lab().exec(h1().ns, [...user, process.execPath, CLI_PATH, ...more]);

  /** curl in h1 as user; returns the HTTP status. */
  async function curl(user: string[], method: string, url: string, body?: string, token?: string): Promise<string> {
    const command = [...user, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', method];
    if (token !== undefined) command.push('-H', `Authorization: Bearer ${token}`);
    if (body !== undefined) command.push('-H', 'content-type: application/json', '-d', body);
    return (await lab().execOk(h1().ns, [...command, `http://${CONTROL}${url}`])).trim();
  }

  it('nobody gets 401 on every endpoint, counted; root gets through; the token file is root-only', async () => {
    const daemon = await startDaemon(lab(), h1().ns, args());
    try {
      const file = tokenFilePath({ host: '127.0.0.1', port: PORT }, `/run/netns/${h1().ns}`);
      const stat = statSync(file);
      expect(stat.mode & 0o777).toBe(0o600);
      expect(stat.uid).toBe(0);
      const nobody = ['runuser', '-u', 'nobody', '--'];
      for (const [method, url, body] of ENDPOINTS) expect(await curl(nobody, method, url, body), `${method} ${url}`).toBe('401');
      // A wrong token is no better, as root or not.
      expect(await curl([], 'GET', '/networks', undefined, 'f'.repeat(64))).toBe('401');
      expect(await curl(nobody, 'POST', '/peers', ENDPOINTS[3][2], 'not-the-token')).toBe('401');

      // Nothing changed: the peer and the entry nobody tried to add are not there.
      const status = await cli(['status', '--json', '--control', CONTROL]);
      expect(status.code, status.stderr).toBe(0);
      const reply = JSON.parse(status.stdout) as { networks: { peers: string[] }[]; control: { unauthorized: number } };
      expect(reply.networks[0].peers).toEqual([lab().hosts[1].underlayIp]);
      expect(reply.control.unauthorized).toBe(ENDPOINTS.length + 2);
      const fdb = await cli(['fdb', 'show', '--json', '--control', CONTROL]);
      expect(fdb.stdout).not.toContain('02:00:00:00:00:99');
      // Logged once, not once per request.
      expect(daemon.log().match(/without its bearer token refused/g)).toHaveLength(1);

      // Root's CLI changes things.
      const added = await cli(['peer', 'add', '10.0.1.77', '--vni', String(VNI), '--control', CONTROL]);
      expect(added.code, added.stderr).toBe(0);
      // The CLI as nobody cannot read the token: one line saying what to do.
      const refused = await cli(['--version'], nobody);
      if (refused.code === 0) {
        // Only if nobody can run the CLI from this checkout at all.
        const asNobody = await cli(['status', '--control', CONTROL], nobody);
        expect(asNobody.code).toBe(1);
        expect(asNobody.stderr.trim()).toMatch(/^tsvtep: this control port needs its bearer token: run as root, or give --control-token-file FILE$/);
      }
    } finally {
      await daemon.stop();
    }
    // The daemon removes its token file when it stops.
    expect(() => statSync(tokenFilePath({ host: '127.0.0.1', port: PORT }, `/run/netns/${h1().ns}`))).toThrow();
  });

  it('--control-token-file gives the token, to the daemon and to the CLI', async () => {
    const file = path.join(dir, 'token');
    const token = 'a-token-of-our-own-0123456789';
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    const daemon = await startDaemon(lab(), h1().ns, args('--control-token-file', file));
    try {
      expect(await curl([], 'GET', '/networks')).toBe('401');
      expect(await curl([], 'GET', '/networks', undefined, token)).toBe('200');
      const status = await cli(['status', '--control', CONTROL, '--control-token-file', file]);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toContain('tsv100');
    } finally {
      await daemon.stop();
    }
  });

  it('an unreadable or empty --control-token-file is one line and exit 1, before any TAP', async () => {
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '\n');
    for (const [file, message] of [
      [path.join(dir, 'missing'), /control token file .*missing does not exist/],
      [empty, /the first line must be a token of 16 or more characters/],
    ] as const) {
      const result = await cli(args('--control-token-file', file));
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(message);
    }
  });

  it('the Unix socket needs no token', async () => {
    const daemon = await startDaemon(lab(), h1().ns, ['--vni', String(VNI), '--bridge', 'br100', '--peer', lab().hosts[1].underlayIp]);
    try {
      const status = await cli(['status']);
      expect(status.code, status.stderr).toBe(0);
    } finally {
      await daemon.stop();
    }
  });
});
