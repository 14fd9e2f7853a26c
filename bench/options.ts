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

/**
 * Runs a benchmark's main. Whatever way it ends (done, failed, Ctrl-C,
 * SIGTERM, an uncaught error) cleanup removes what it made. A UsageError
 * exits 2 and prints the usage; any other failure exits 1.
 */
export function runBenchmark(name: string, usage: string, main: () => Promise<void>, cleanup: () => Promise<void>): void {
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      console.error(`\n${signal}: removing the ${name}'s namespaces and processes`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
    process.once(event, (error: unknown) => {
      console.error(`\n${name} FAILED (${event}):`, error);
      void cleanup().finally(() => process.exit(1));
    });
  }
  main()
    .catch((error: unknown) => {
      if (interrupted) return; // the measurement failed because cleanup stopped it
      process.exitCode = error instanceof UsageError ? 2 : 1;
      console.error(`\n${name} FAILED: ${error instanceof Error ? error.message : String(error)}`);
      if (error instanceof UsageError) console.error(usage);
    })
    .finally(() => cleanup());
}
