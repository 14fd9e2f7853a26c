// Episodes of failing I/O, told from counters sampled every few seconds: a
// send or TAP write that fails is counted on the hot path (NetworkDrops) and
// its errno logged once; this says when the failures started and when they
// stopped again, so the daemon can say both once, not once per datagram.

export const EPISODE_NONE = 0;
/** Failures appeared since the last sample, after none. */
export const EPISODE_STARTED = 1;
/** No failures since the last sample, and successes again. */
export const EPISODE_ENDED = 2;

export type EpisodeChange = typeof EPISODE_NONE | typeof EPISODE_STARTED | typeof EPISODE_ENDED;

export class FailureEpisodes {
  private failing = false;
  private failures = 0;
  private successes = 0;
  private failuresAtStart = 0;
  /** Failures of the episode that ended last (or of the one going on). */
  lost = 0;

  /** Starts from counters as they are now, so that what happened before is not an episode. */
  constructor(failures = 0, successes = 0) {
    this.failures = failures;
    this.successes = successes;
  }

  get isFailing(): boolean {
    return this.failing;
  }

  /** Feeds the cumulative failure and success counts; says whether an episode started or ended. */
  update(failures: number, successes: number): EpisodeChange {
    const newFailures = failures - this.failures;
    const newSuccesses = successes - this.successes;
    const before = this.failures;
    this.failures = failures;
    this.successes = successes;
    if (!this.failing) {
      if (newFailures <= 0) return EPISODE_NONE;
      this.failing = true;
      this.failuresAtStart = before;
      this.lost = newFailures;
      return EPISODE_STARTED;
    }
    this.lost = failures - this.failuresAtStart;
    // Quiet (nothing sent, nothing failed) says nothing: still failing until something gets through.
    if (newFailures > 0 || newSuccesses <= 0) return EPISODE_NONE;
    this.failing = false;
    return EPISODE_ENDED;
  }
}
