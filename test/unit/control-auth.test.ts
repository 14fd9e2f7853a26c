// The control port's token check and token file, without sockets or root.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ControlAuth } from '../../src/control/auth';
import { readTokenFile, TokenError, tokenFilePath } from '../../src/control/token-file';

const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-auth-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOKEN = '0123456789abcdef0123456789abcdef';

function fakeResponse(): { response: http.ServerResponse; answer: () => { status: number; headers: Record<string, unknown>; body: string } } {
  let status = 0;
  let headers: Record<string, unknown> = {};
  let body = '';
  const response = {
    writeHead(s: number, h: Record<string, unknown>) {
      status = s;
      headers = h;
      return response;
    },
    end(text: string) {
      body = text;
    },
  } as unknown as http.ServerResponse;
  return { response, answer: () => ({ status, headers, body }) };
}

function fakeRequest(authorization?: string): http.IncomingMessage {
  return { method: 'GET', url: '/networks', headers: authorization === undefined ? {} : { authorization } } as http.IncomingMessage;
}

describe('control token', () => {
  const file = path.join(dir, 'token');
  writeFileSync(file, `${TOKEN}\n`);

  it('admits the bearer token and refuses anything else with 401, counted, reported once', () => {
    const refusals: string[] = [];
    const auth = ControlAuth.open({ kind: 'tcp', host: '127.0.0.1', port: 7000 }, file, (r) => refusals.push(r.url ?? ''));
    expect(auth.admit(fakeRequest(`Bearer ${TOKEN}`), fakeResponse().response)).toBe(true);
    expect(auth.admit(fakeRequest(`bearer ${TOKEN}`), fakeResponse().response)).toBe(true);
    for (const header of [undefined, '', TOKEN, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Bearer ${TOKEN} extra`, `Basic ${TOKEN}`]) {
      const { response, answer } = fakeResponse();
      expect(auth.admit(fakeRequest(header), response), String(header)).toBe(false);
      expect(answer().status).toBe(401);
      expect(answer().headers['www-authenticate']).toBe('Bearer');
      expect(JSON.parse(answer().body).error).toMatch(/bearer token/);
    }
    expect(auth.unauthorized).toBe(7);
    expect(refusals).toEqual(['/networks']);
  });

  it('reads the first line of a token file, and refuses short or missing ones', () => {
    expect(readTokenFile(file)).toBe(TOKEN);
    const short = path.join(dir, 'short');
    writeFileSync(short, 'abc\n');
    expect(() => readTokenFile(short)).toThrow(TokenError);
    expect(() => readTokenFile(path.join(dir, 'missing'))).toThrow(/does not exist/);
  });

  it('names the token file by namespace, address and port', () => {
    const a = tokenFilePath({ host: '127.0.0.1', port: 7000 });
    expect(a).toMatch(/^\/run\/tsvtep\/(net\d+|host)-tcp-127\.0\.0\.1-7000\.token$/);
    expect(tokenFilePath({ host: '::1', port: 7000 })).toMatch(/-tcp-__1-7000\.token$/);
    expect(tokenFilePath({ host: '127.0.0.1', port: 7001 })).not.toBe(a);
  });
});
