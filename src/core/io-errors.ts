// Failing sends and TAP writes are counted on the hot path (NetworkDrops) and
// their errno logged once per (kind, errno, VNI), so a failing link logs a
// line, not a flood. The key is a number: nothing is built per failure.

export type IoErrorKind = 'socket_send' | 'tap_write';

const KIND_TAP_WRITE = 2 ** 36;
const ERRNO_UNIT = 2 ** 24; // VNIs are 24 bits

function keyOf(kind: IoErrorKind, errno: number, vni: number): number {
  return (kind === 'tap_write' ? KIND_TAP_WRITE : 0) + (errno & 0xfff) * ERRNO_UNIT + vni;
}

export class IoErrorReports {
  private readonly reported = new Set<number>();

  constructor(private readonly onIoError?: (what: IoErrorKind, errno: number, vni: number) => void) {}

  /** Reports each (kind, errno, vni) once. */
  report(what: IoErrorKind, errno: number, vni: number): void {
    if (this.onIoError === undefined) return;
    const key = keyOf(what, errno, vni);
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.onIoError(what, errno, vni);
  }

  /** Lets failures of one kind on a VNI be reported again, once the daemon saw them stop. */
  rearm(what: IoErrorKind, vni: number): void {
    const kindBit = what === 'tap_write' ? KIND_TAP_WRITE : 0;
    for (const key of this.reported) {
      if (key % ERRNO_UNIT === vni && (key >= KIND_TAP_WRITE ? KIND_TAP_WRITE : 0) === kindBit) this.reported.delete(key);
    }
  }
}
