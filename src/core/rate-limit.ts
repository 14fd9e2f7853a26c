// A token bucket: on average at most `rate` events a second, with bursts of
// up to `burst` at once. The engine keeps one per VNI for flooding, so that a
// broadcast storm on one host reaches every peer at a bounded rate.
//
// Pure: time comes from the injected clock, and take() allocates nothing.

import type { Clock } from './clock';

export const DEFAULT_FLOOD_RATE = 2_000;

export class TokenBucket {
  private tokens = 0;
  private last = 0;
  private perMs = 0;
  private burst = 0;

  constructor(
    rate: number,
    burst: number,
    private readonly clock: Clock,
  ) {
    this.configure(rate, burst);
    this.tokens = this.burst;
    this.last = clock.now();
  }

  /** Events per second on average. */
  get rate(): number {
    return this.perMs * 1000;
  }

  /** Events that may pass at once after a quiet spell. */
  get capacity(): number {
    return this.burst;
  }

  /** Changes rate and burst in place; the tokens already saved are kept, up to the new burst. */
  configure(rate: number, burst: number): void {
    if (!(rate > 0) || !(burst >= 1)) throw new RangeError(`token bucket needs rate > 0 and burst >= 1 (got ${rate}, ${burst})`);
    this.perMs = rate / 1000;
    this.burst = burst;
    if (this.tokens > burst) this.tokens = burst;
  }

  /**
   * Whether `cost` events may pass now; if so they are paid for. One token is
   * enough to let a costly event pass (the bucket goes into debt and refills
   * before the next), so an event dearer than the whole burst still passes
   * at the average rate rather than never.
   */
  take(cost = 1): boolean {
    const now = this.clock.now();
    const elapsed = now - this.last;
    if (elapsed > 0) {
      const tokens = this.tokens + elapsed * this.perMs;
      this.tokens = tokens < this.burst ? tokens : this.burst;
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= cost;
    return true;
  }
}
