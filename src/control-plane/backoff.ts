// Delays between attempts to reach a backend that is away: doubling from
// initialMs up to maxMs, with full jitter so a fleet that lost its datastore
// together does not come back in lockstep.

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs = 200,
    private readonly maxMs = 5_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** After a success: the next failure starts from initialMs again. */
  reset(): void {
    this.attempt = 0;
  }
}
