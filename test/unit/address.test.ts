import { describe, expect, it } from 'vitest';
import { addressRecord, canonicalAddress, recordAddress, recordPort } from '../../src/core/address';
import { RemoteTable } from '../../src/core/remotes';

describe('address records', () => {
  it('stores IPv4 as IPv4-mapped IPv6 with the port', () => {
    const record = addressRecord('10.0.1.41', 4789);
    expect([...record.subarray(0, 16)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, 41]);
    expect(recordPort(record, 0)).toBe(4789);
    expect(recordAddress(record, 0)).toBe('10.0.1.41');
  });

  it('round-trips IPv6 addresses in canonical form', () => {
    expect(canonicalAddress('fd00:0:0:0:0:0:0:1')).toBe('fd00::1');
    expect(canonicalAddress('2001:db8::8:800:200c:417a')).toBe('2001:db8::8:800:200c:417a');
    expect(canonicalAddress('::1')).toBe('::1');
    expect(canonicalAddress('::')).toBe('::');
    expect(canonicalAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalAddress('fe80::1%eth0')).toBe('fe80::1');
  });

  it('rejects text that is not an address', () => {
    expect(() => addressRecord('10.0.1', 1)).toThrow(/not an IP address/);
  });
});

describe('remote table', () => {
  it('finds a remote from a received record whatever the source port', () => {
    const remotes = new RemoteTable(4789);
    const a = remotes.add('10.0.1.41');
    const b = remotes.add('fd00:1::42');
    expect(remotes.findByRecord(addressRecord('10.0.1.41', 50123), 0)).toBe(a.id);
    expect(remotes.findByRecord(addressRecord('fd00:1::42', 4789), 0)).toBe(b.id);
    expect(remotes.findByRecord(addressRecord('10.0.1.43', 4789), 0)).toBe(-1);
    // Sends always go to the VXLAN port.
    expect(recordPort(a.record, 0)).toBe(4789);
  });

  it('returns the same remote for the same address and reuses ids after removal', () => {
    const remotes = new RemoteTable(4789);
    const a = remotes.add('10.0.1.41');
    expect(remotes.add('::ffff:10.0.1.41').id).toBe(a.id);
    for (let i = 0; i < 200; i++) remotes.add(`10.1.${i >> 8}.${i & 0xff}`);
    remotes.remove(a.id);
    expect(remotes.findByRecord(addressRecord('10.0.1.41', 4789), 0)).toBe(-1);
    expect(remotes.findByRecord(addressRecord('10.1.0.199', 4789), 0)).not.toBe(-1);
    expect(remotes.add('10.0.9.9').id).toBe(a.id);
  });
});
