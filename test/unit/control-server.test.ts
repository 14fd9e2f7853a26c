// The control server over a stand-in ControlApi (no daemon, no root): which
// request reaches which call, and which HTTP status each failure gets.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangeError, type ControlApi } from '../../src/control/api';
import { ControlServer } from '../../src/control/server';

const calls: string[] = [];

/** Answers for VNI 100 only; anything else is not found, as the daemon says. */
const api: ControlApi = {
  networkViews: () => [],
  engineCounters: () => ({ rxDatagrams: 5, drops: { bad_header: 3, unknown_vni: 1 } }),
  peerViews: (vni) => [{ address: '10.0.1.41', vnis: [vni ?? 100], learned: false, sources: ['static'], rxDatagrams: 1, rxBytes: 2, txDatagrams: 3, txBytes: 4 }],
  fdbViews: () => [],
  addPeer(vni, address) {
    calls.push(`addPeer ${vni} ${address}`);
    if (vni !== 100) throw new ChangeError(`VNI ${vni} is not configured here`, 'not-found');
    if (address === 'nonsense') throw new ChangeError(`${address} is not an IPv4 or IPv6 address`);
    return true;
  },
  removePeer: (vni, address) => (calls.push(`removePeer ${vni} ${address}`), false),
  addStatic(vni, mac, remote) {
    calls.push(`addStatic ${vni} ${mac} ${remote}`);
    throw new ChangeError(`VNI ${vni} is already running`, 'conflict');
  },
  removeStatic: () => {
    throw new Error('a bug');
  },
};

let dir: string;
let socketPath: string;
let server: ControlServer;

function request(method: string, url: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: url, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('control server', () => {
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-control-'));
    socketPath = path.join(dir, 'control.sock');
    server = await ControlServer.start(api, { kind: 'unix', path: socketPath });
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('listens on a socket only its owner may use', () => {
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
  });

  it('answers reads from the api', async () => {
    expect(await request('GET', '/networks')).toEqual({ status: 200, json: { networks: [], engine: { rxDatagrams: 5, drops: { bad_header: 3, unknown_vni: 1 } }, control: { unauthorized: 0 } } });
    const peers = await request('GET', '/peers?vni=7');
    expect(peers.status).toBe(200);
    expect(peers.json.peers).toEqual([expect.objectContaining({ address: '10.0.1.41', vnis: [7] })]);
  });

  it('passes changes on and answers what the api returned', async () => {
    expect(await request('POST', '/peers', JSON.stringify({ vni: 100, address: '10.0.1.42' }))).toEqual({ status: 200, json: { added: true } });
    expect(await request('DELETE', '/peers?vni=100&address=10.0.1.43')).toEqual({ status: 200, json: { removed: false } });
    expect(calls).toContain('addPeer 100 10.0.1.42');
    expect(calls).toContain('removePeer 100 10.0.1.43');
  });

  it('turns the kind of a ChangeError into its status: not-found 404, invalid 400, conflict 409', async () => {
    expect(await request('POST', '/peers', JSON.stringify({ vni: 5, address: '10.0.1.42' }))).toEqual({ status: 404, json: { error: 'VNI 5 is not configured here' } });
    expect((await request('POST', '/peers', JSON.stringify({ vni: 100, address: 'nonsense' }))).status).toBe(400);
    expect((await request('POST', '/fdb', JSON.stringify({ vni: 100, mac: '02:00:00:00:00:01', remote: '10.0.1.41' }))).status).toBe(409);
  });

  it('refuses bad requests with 400 before the api sees them, and says why', async () => {
    const before = calls.length;
    expect(await request('POST', '/peers', '{not json')).toEqual({ status: 400, json: { error: 'request body is not JSON' } });
    expect((await request('POST', '/peers', JSON.stringify({ vni: 2 ** 24, address: '10.0.1.42' }))).status).toBe(400);
    expect((await request('POST', '/peers', JSON.stringify({ vni: 100, address: '10.0.1.42', extra: 1 }))).status).toBe(400);
    expect((await request('DELETE', '/peers?vni=100')).status).toBe(400);
    expect(calls.length).toBe(before);
  });

  it('answers 404 for unknown endpoints, 409 for reload without a file, 413 for huge bodies, 500 for a bug', async () => {
    expect((await request('GET', '/nothing')).status).toBe(404);
    expect(await request('POST', '/reload')).toEqual({ status: 409, json: { error: 'no config file to reload (started without --config)' } });
    expect((await request('POST', '/peers', 'x'.repeat(65 * 1024))).status).toBe(413);
    expect(await request('DELETE', '/fdb?vni=100&mac=02:00:00:00:00:01')).toEqual({ status: 500, json: { error: 'a bug' } });
  });
});
