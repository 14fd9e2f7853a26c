// The steady-state hot path allocates nothing: frames through two engines and
// back over in-memory ports, many batches, in a child process whose young
// generation is kept small (1 MiB) so that any allocation per batch shows as
// young-generation collections in --trace-gc. Needs `npm run build` (npm test
// does it), not root, not the addon.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const PROBE = path.resolve(__dirname, '../../dist/bench/alloc-probe.js');
const BATCHES = 200_000;

/** Collections after warm-up, while `batches` batches of 32 frames go through. */
function collectionsInSteadyState(batches: number, ...flags: string[]): number {
  const run = spawnSync(process.execPath, ['--trace-gc', '--max-semi-space-size=1', PROBE, String(batches), ...flags], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const lines = run.stdout.split('\n');
  const steady = lines.indexOf('steady');
  expect(lines).toContain(`done ${batches}`);
  return lines.slice(steady + 1).filter((line) => /Scavenge|Mark-Compact|Minor/.test(line)).length;
}

describe('the hot path', () => {
  it('allocates nothing per batch in steady state (encapsulate, flood, send, receive, learn, write)', () => {
    expect(existsSync(PROBE), `${PROBE} missing: run npm run build`).toBe(true);
    // Allocation that does not grow with the batches (compilation, a stray buffer) may cost a few
    // collections; 16 bytes per batch would cost 3, the control's array per batch costs about 18.
    expect(collectionsInSteadyState(BATCHES)).toBeLessThanOrEqual(4);
  }, 150_000);

  it('is measured by a probe that does see one small array per batch', () => {
    // The control: the same run keeping one 4-element array per batch alive for a while.
    expect(collectionsInSteadyState(BATCHES, '--allocate')).toBeGreaterThanOrEqual(10);
  }, 150_000);
});
