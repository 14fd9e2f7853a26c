// What the benchmark scripts share on their command lines.

import path from 'node:path';

/** A bad option: the script prints its usage and exits 2. */
export class UsageError extends Error {}

/** Where results go unless --out says otherwise (dist/bench -> bench/results). */
export const RESULTS_DIR = path.resolve(__dirname, '..', '..', 'bench', 'results');

/** The number in text, which must lie in [min, max]; a UsageError naming the option if not. */
export function numberOption(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} ${text}: expected a number from ${min} to ${max}`);
  return n;
}

/** Prints usage and exits 0 when --help was given. */
export function helpRequested(help: unknown, usage: string): void {
  if (help) {
    console.log(usage);
    process.exit(0);
  }
}
