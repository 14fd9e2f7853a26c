// The steady-state hot path allocates nothing: frames through two engines and
// back over in-memory ports, many batches, in a child process whose young
// generation is kept small (1 MiB) so that any allocation per batch shows as
// young-generation collections in --trace-gc. The probe (bench/alloc-probe.ts)
// is compiled here, with the project's tsconfig, into a temporary directory:
// the test needs no `npm run build`, no write access to the checkout, no root,
// and the child may not load the addon (as in every unit test).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const NO_ADDON = `process.dlopen = (_m, file) => { throw new Error('the allocation probe must not load a compiled addon (' + file + ')'); };\n`;

let outDir = '';
let probe = '';
let guard = '';

/** Compiles bench/alloc-probe.ts and what it imports as tsc does for dist/; returns the probe's path. */
function compileProbe(into: string): string {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined });
  if (config === undefined) throw new Error('tsconfig.json unreadable');
  const options = { ...config.options, outDir: into, rootDir: ROOT, sourceMap: false, noEmitOnError: true };
  const program = ts.createProgram([path.join(ROOT, 'bench', 'alloc-probe.ts')], options);
  const result = program.emit();
  const errors = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics].map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  if (result.emitSkipped || errors.length > 0) throw new Error(`alloc-probe does not compile: ${errors.join('; ')}`);
  return path.join(into, 'bench', 'alloc-probe.js');
}

beforeAll(() => {
  outDir = mkdtempSync(path.join(tmpdir(), 'tsvtep-alloc-probe-'));
  probe = compileProbe(outDir);
  guard = path.join(outDir, 'no-addon.js');
  writeFileSync(guard, NO_ADDON);
}, 60_000);

afterAll(() => {
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

/** Collections after warm-up, while `batches` batches of 32 frames go through. */
function collectionsInSteadyState(batches: number, ...flags: string[]): number {
  const run = spawnSync(process.execPath, ['--trace-gc', '--max-semi-space-size=1', '--require', guard, probe, String(batches), ...flags], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const lines = run.stdout.split('\n');
  const steady = lines.indexOf('steady');
  expect(lines).toContain(`done ${batches}`);
  return lines.slice(steady + 1).filter((line) => /Scavenge|Mark-Compact|Minor/.test(line)).length;
}

// Collections that do not grow with the number of batches (compilation, a stray buffer, a busy
// machine pushing a late warm-up collection into the window) cancel out between a short and a
// long run; allocation per batch does not: 16 bytes per batch cost about 6 collections over the
// 400 000 batches between the two, the control's 4-element array about 35 (10 and 45 measured).
const SHORT = 100_000;
const LONG = 500_000;

describe('the hot path', () => {
  it('allocates nothing per batch in steady state (encapsulate, flood, send, receive, learn, write)', () => {
    const extra = collectionsInSteadyState(LONG) - collectionsInSteadyState(SHORT);
    expect(extra).toBeLessThanOrEqual(2);
  }, 150_000);

  it('is measured by a probe that does see one small array per batch', () => {
    const extra = collectionsInSteadyState(LONG, '--allocate') - collectionsInSteadyState(SHORT, '--allocate');
    expect(extra).toBeGreaterThanOrEqual(10);
  }, 150_000);
});
