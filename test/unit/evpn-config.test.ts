import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config';

const network = { vni: 100, bridge: 'br0' };

describe('evpn configuration', () => {
  it('needs no static peer with evpn, and defaults the AS', () => {
    const config = parseConfig({ local: '10.0.1.1', evpn: { api: '127.0.0.1:50051' }, networks: [network] });
    expect(config.evpn).toEqual({ api: '127.0.0.1:50051', asn: 65000 });
    expect(config.networks[0].peers).toEqual([]);
  });

  it('still needs a peer without evpn', () => {
    expect(() => parseConfig({ networks: [network] })).toThrow(/networks\[0\]\.peers: needs at least one peer \(--peer ADDRESS\), or --etcd URL or --evpn ADDR:PORT/);
  });

  it('needs the VTEP address, a host:port API and an IPv4 router ID', () => {
    expect(() => parseConfig({ evpn: { api: '127.0.0.1:50051' }, networks: [network] })).toThrow(/evpn: needs --local or --dev/);
    expect(() => parseConfig({ local: '10.0.1.1', evpn: { api: '127.0.0.1' }, networks: [network] })).toThrow(/evpn\.api: not host:port/);
    expect(() => parseConfig({ local: '10.0.1.1', evpn: { api: '[::1]:50051', routerId: 'fd00::1' }, networks: [network] })).toThrow(ConfigError);
    expect(() => parseConfig({ local: 'fd00::1', evpn: { api: '[::1]:50051' }, networks: [network] })).toThrow(/evpn\.routerId: needs a router ID/);
    expect(parseConfig({ local: 'fd00::1', evpn: { api: '[::1]:50051', routerId: '10.0.0.1', asn: 64512 }, networks: [network] }).evpn).toEqual({
      api: '[::1]:50051',
      routerId: '10.0.0.1',
      asn: 64512,
    });
  });
});
