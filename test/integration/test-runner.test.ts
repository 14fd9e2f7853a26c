// `npm test` as a contributor without root runs it: the unit project runs and
// passes, and every system test is listed as not run, with the reason and the
// command that runs them, so nothing is skipped silently.

import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AS_UNPRIVILEGED_READER, NOBODY_UID } from '../helpers/unprivileged';

const ROOT = path.resolve(__dirname, '..', '..');

describe('npm test without root', () => {
  const home = mkdtempSync(path.join(tmpdir(), 'tsvtep-nobody-home-'));
  chownSync(home, NOBODY_UID, NOBODY_UID);
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it('runs the unit tests, then lists every system test as not run because it needs root', async () => {
    // A clean environment: not this vitest's variables, a HOME nobody may write (npm's cache).
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', CI: 'true', NO_COLOR: '1' };
    const child = spawn(AS_UNPRIVILEGED_READER[0], [...AS_UNPRIVILEGED_READER.slice(1), 'npm', 'test'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 170_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);

    expect(code, output).toBe(0);
    expect(output).toMatch(/\|unit\| test\/unit\/\S+\.test\.ts/);
    expect(output).not.toMatch(/\|system\|/);
    expect(output).toMatch(/Tests {2}\d+ passed \(\d+\)/);
    expect(output).toContain('System tests not run: they need root (network namespaces, TAP devices, Docker); run them with: sudo npm run test:system');
    const systemFiles = readdirSync(path.join(ROOT, 'test', 'integration')).filter((f) => f.endsWith('.test.ts'));
    expect(systemFiles.length).toBeGreaterThan(10);
    for (const file of systemFiles) expect(output).toContain(`  not run (needs root): test/integration/${file}`);
  }, 180_000);
});
