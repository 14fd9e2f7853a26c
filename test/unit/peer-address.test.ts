import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config';
import { ipv4Broadcast, peerAddressProblem } from '../../src/core/peer-address';

function configProblem(peer: string): string {
  try {
    parseConfig({ networks: [{ vni: 1, bridge: 'br1', peers: [peer] }] });
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return 'accepted';
}

describe('peer addresses', () => {
  it('accepts unicast addresses of other hosts', () => {
    for (const address of ['10.0.1.42', '192.0.2.1', '169.254.3.4', 'fd00::42', '2001:db8::1', '::ffff:10.0.0.1']) {
      expect(peerAddressProblem(address), address).toBeUndefined();
    }
  });

  const refused: [string, RegExp][] = [
    ['0.0.0.0', /unspecified/],
    ['::', /unspecified/],
    ['::ffff:0.0.0.0', /unspecified/],
    ['127.0.0.1', /loopback/],
    ['127.9.9.9', /loopback/],
    ['::1', /loopback/],
    ['::ffff:127.0.0.1', /loopback/],
    ['239.1.1.1', /multicast group.*head-end replication/],
    ['224.0.0.1', /multicast group.*head-end replication/],
    ['ff02::1', /multicast group.*head-end replication/],
    ['ff0e::1234', /multicast group/],
    ['255.255.255.255', /broadcast/],
    ['fe80::1', /link-local address without a zone/],
    ['fe80::1%eth0', /link-local peers are not supported/],
    ['0.1.2.3', /0\.0\.0\.0\/8/],
    ['240.0.0.1', /reserved/],
    ['10.0.0.300', /not an IPv4 or IPv6 address/],
  ];
  for (const [address, reason] of refused) {
    it(`refuses ${address}`, () => {
      expect(peerAddressProblem(address)).toMatch(reason);
    });
  }

  it('the config (flags, file, reload) refuses them with the address named', () => {
    expect(configProblem('0.0.0.0')).toBe('networks[0].peers[0]: 0.0.0.0 is the unspecified address (give the address of the other host)');
    expect(configProblem('239.1.1.1')).toMatch(/^networks\[0\]\.peers\[0\]: 239\.1\.1\.1 is a multicast group/);
    expect(configProblem('10.0.1.42')).toBe('accepted');
  });

  it('computes subnet broadcast addresses', () => {
    expect(ipv4Broadcast('10.0.1.41', 24)).toBe('10.0.1.255');
    expect(ipv4Broadcast('172.18.3.4', 16)).toBe('172.18.255.255');
    expect(ipv4Broadcast('192.168.1.130', 25)).toBe('192.168.1.255');
    expect(ipv4Broadcast('10.0.0.1', 31)).toBeUndefined();
    expect(ipv4Broadcast('fd00::1', 64)).toBeUndefined();
  });
});
