// The control interface under hostile use, while the data plane forwards:
// malformed and odd requests, bodies far over the limit (with and without a
// length), slow clients that never finish, and 1 000 requests at once. Every
// request gets a 4xx answer or is cut off, never a 500 or a crash; bodies
// are bounded; slow clients are timed out; other clients are answered
// meanwhile; ping between the containers never stops.

import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { defaultControlPath } from '../../src/control/endpoint';
import { ping } from '../../src/lab/checks';
import { startDaemon, type DaemonProcess } from '../../src/lab/process';
import { memoryOf } from '../helpers/hostile';
import { expectPing, useTopology } from '../helpers/lab';

const VNI = 100;

interface Answer {
  status: number;
  body: string;
}

/** One request on its own connection; status 0 if the daemon closed it without an answer. */
function request(socketPath: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers, agent: false, timeout: 30_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 30 s')));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') resolve({ status: 0, body: '' });
      else reject(error);
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

describe('control interface fuzz', () => {
  let daemon: DaemonProcess | undefined;
  const lab = useTopology({ hosts: 2, vnis: [VNI], ipv6: false }, async (topology) => {
    const [h1, h2] = topology.hosts;
    daemon = await startDaemon(topology, h1.ns, ['--vni', String(VNI), '--bridge', 'br100', '--peer', h2.underlayIp]);
    await startDaemon(topology, h2.ns, ['--vni', String(VNI), '--bridge', 'br100', '--peer', h1.underlayIp]);
  });
  const socketPath = () => defaultControlPath(4789, `/run/netns/${lab().hosts[0].ns}`);
  const alive = () => expect(daemon?.child.exitCode, daemon?.log()).toBeNull();

  it('malformed JSON and odd requests get 4xx, never 500', async () => {
    await expectPing(lab(), lab().container(0), lab().container(1));
    const bodies = [
      '',
      '{',
      'null',
      '[]',
      '"text"',
      '{"vni": "abc", "address": "10.0.1.9"}',
      '{"vni": 1e400, "address": "10.0.1.9"}',
      '{"vni": 100, "address": 7}',
      '{"vni": 100, "address": "10.0.1.9", "extra": 1}',
      '{"__proto__": {"vni": 100}, "address": "10.0.1.9"}',
      '{"vni": 100, "address": "not an address"}',
      '{"vni": 100, "mac": "zz:zz", "remote": "10.0.1.42"}',
      '['.repeat(200_000),
      `{"vni": 100, "address": "${'9'.repeat(10_000)}"}`,
      Buffer.from([0xff, 0xfe, 0x00, 0x7b]).toString('latin1'),
    ];
    const answers: Answer[] = [];
    for (const body of bodies) {
      for (const path of ['/peers', '/fdb']) answers.push(await request(socketPath(), 'POST', path, body, { 'content-type': 'application/json' }));
    }
    for (const [method, path] of [
      ['GET', '/../../etc/passwd'],
      ['GET', '/fdb?vni=abc'],
      ['GET', '/peers?vni=99999999'],
      ['DELETE', '/peers'],
      ['DELETE', '/fdb?vni=100'],
      ['PUT', '/peers'],
      ['GET', `/${'x'.repeat(4_000)}`],
      ['POST', '/reload'],
    ]) {
      answers.push(await request(socketPath(), method, path));
    }
    for (const answer of answers) {
      expect(answer.status, answer.body).toBeGreaterThanOrEqual(400);
      expect(answer.status, answer.body).toBeLessThan(500);
      expect(() => JSON.parse(answer.body)).not.toThrow();
    }
    // None of it changed anything.
    const peers = JSON.parse((await request(socketPath(), 'GET', '/peers')).body) as { peers: { address: string }[] };
    expect(peers.peers.map((p) => p.address)).toEqual([lab().hosts[1].underlayIp]);
    alive();
  });

  it('bodies over the limit get 413 (or the connection closed) and do not grow memory', async () => {
    const pid = daemon?.child.pid as number;
    const before = memoryOf(pid).rssMb;
    const huge = Buffer.alloc(8 * 1024 * 1024, 0x20);
    for (let i = 0; i < 5; i++) {
      const withLength = await request(socketPath(), 'POST', '/peers', huge, { 'content-type': 'application/json', 'content-length': String(huge.length) });
      expect([0, 413]).toContain(withLength.status);
      const chunked = await request(socketPath(), 'POST', '/fdb', huge, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      expect([0, 413]).toContain(chunked.status);
    }
    // A declared length over the limit is refused before any of the body is read.
    const declared = await request(socketPath(), 'POST', '/peers', undefined, { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) });
    expect(declared.status).toBe(413);
    expect(declared.body).toMatch(/request body too large/);
    // A body just under the limit is read (and refused as not JSON).
    expect((await request(socketPath(), 'POST', '/peers', Buffer.alloc(60 * 1024, 0x41))).status).toBe(400);
    expect(memoryOf(pid).rssMb - before).toBeLessThan(30);
    expect((await request(socketPath(), 'GET', '/networks')).status).toBe(200);
    alive();
  });

  it('slow clients are cut off; everyone else is answered meanwhile; forwarding goes on', async () => {
    const slow: Socket[] = [];
    const closedAfter: number[] = [];
    const started = Date.now();
    for (let i = 0; i < 50; i++) {
      const socket = connect(socketPath());
      socket.on('error', () => undefined);
      // Half send headers a byte at a time and never finish; half finish the headers and then trickle the body.
      const text = i % 2 === 0 ? 'GET /networks HTTP/1.1\r\nHost: x\r\nX-Slow: ' : 'POST /peers HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{';
      socket.write(text);
      const trickle = setInterval(() => socket.writable && socket.write('a'), 500);
      socket.on('close', () => {
        clearInterval(trickle);
        closedAfter.push(Date.now() - started);
      });
      slow.push(socket);
    }
    try {
      const pinging = ping(lab(), lab().container(0), lab().container(1).ip, { count: 40, intervalS: 0.25 });
      // Others are answered while the slow ones hang on.
      for (let i = 0; i < 5; i++) {
        expect((await request(socketPath(), 'GET', '/networks')).status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const deadline = Date.now() + 30_000;
      while (closedAfter.length < slow.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      expect(closedAfter.length, 'slow clients still connected after 30 s').toBe(slow.length);
      const pinged = await pinging;
      expect(pinged.received, pinged.output).toBe(pinged.sent);
    } finally {
      for (const socket of slow) socket.destroy();
    }
    alive();
  });

  it('1 000 requests at once are all answered while ping goes on', async () => {
    const pinging = ping(lab(), lab().container(0), lab().container(1).ip, { count: 20, intervalS: 0.2 });
    const answers = await Promise.all(Array.from({ length: 1_000 }, (_, i) => request(socketPath(), 'GET', i % 2 ? '/networks' : '/fdb')));
    const statuses = new Map<number, number>();
    for (const answer of answers) statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    expect(Object.fromEntries(statuses)).toEqual({ 200: 1_000 });
    const pinged = await pinging;
    expect(pinged.received, pinged.output).toBe(pinged.sent);
    alive();
  });
});
