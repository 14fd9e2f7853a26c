// Pieces every command shares: exit codes, usage errors, number parsing.

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A mistake in how the command was called; exits 2. */
export class UsageError extends Error {}

export function numberOption(flag: string) {
  return (value: string): number => {
    const trimmed = value.trim();
    if (!/^-?\d+(\.\d+)?$/.test(trimmed)) throw new UsageError(`${flag} ${value}: not a number`);
    return Number(trimmed);
  };
}

export function fail(code: number, message: string): never {
  process.stderr.write(`tsvtep: ${message}\n`);
  process.exit(code);
}
