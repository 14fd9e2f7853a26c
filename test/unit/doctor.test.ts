// tsvtep doctor's report and the capability parsing behind its first check
// (the checks themselves run on real devices: test/integration/doctor.test.ts).

import { describe, expect, it } from 'vitest';
import { doctorReport } from '../../src/commands/doctor';
import { hasNetAdmin, type CheckResult } from '../../src/host-checks';

describe('the doctor report', () => {
  const results: CheckResult[] = [
    { name: 'root or CAP_NET_ADMIN', status: 'pass', detail: 'running as root' },
    { name: '/dev/net/tun', status: 'fail', detail: 'missing: load the tun module (modprobe tun)' },
    { name: 'UDP GSO', status: 'warn', detail: 'refused: tsvtep sends datagram by datagram, slower' },
  ];

  it('is one aligned line per check, then the verdict', () => {
    expect(doctorReport(results)).toBe(
      [
        '  pass  root or CAP_NET_ADMIN  running as root',
        '  FAIL  /dev/net/tun           missing: load the tun module (modprobe tun)',
        '  warn  UDP GSO                refused: tsvtep sends datagram by datagram, slower',
        'Not ready: 1 required check failed (FAIL above).',
        '',
      ].join('\n'),
    );
  });

  it('is ready when nothing failed, and says how many warnings', () => {
    expect(doctorReport(results.filter((r) => r.status !== 'fail')).split('\n').at(-2)).toBe(
      'Ready: every required check passed (1 warning: tsvtep runs, but slower).',
    );
    expect(doctorReport(results.slice(0, 1)).split('\n').at(-2)).toBe('Ready: every required check passed.');
  });
});

describe('CAP_NET_ADMIN from /proc/self/status', () => {
  it('reads bit 12 of the effective set', () => {
    expect(hasNetAdmin('Name:\tnode\nCapEff:\t000001ffffffffff\n')).toBe(true);
    expect(hasNetAdmin('CapEff:\t0000000000001000\n')).toBe(true);
    expect(hasNetAdmin('CapEff:\t0000000000000000\n')).toBe(false);
    expect(hasNetAdmin('CapEff:\t0000000000000800\n')).toBe(false);
    expect(hasNetAdmin('no such line\n')).toBe(false);
  });
});
