import { describe, expect, it } from 'vitest';
import { loadGobgpApi, ProtoError } from '../../src/control-plane/evpn/proto';
import {
  decodePath,
  inclusiveMulticastPath,
  isLocalPath,
  macIpPath,
  routeKey,
  PMSI_INGRESS_REPLICATION,
  TUNNEL_TYPE_VXLAN,
  type ApiPath,
} from '../../src/control-plane/evpn/routes';

// GoBGP's own .proto files (golang-github-osrg-gobgp-dev), as the daemon loads them.
const { codec } = loadGobgpApi();
const origin = { routerId: '10.0.1.1', asn: 65000, vtep: '10.0.1.1' };

function attributes(path: ApiPath): Record<string, Record<string, unknown>> {
  return Object.fromEntries((path.pattrs ?? []).map((a) => {
    const decoded = codec.unpack(a);
    return [decoded?.type, decoded?.message];
  }));
}

function communities(path: ApiPath): { type: string; message: Record<string, unknown> }[] {
  const ext = attributes(path).ExtendedCommunitiesAttribute;
  return (ext.communities as { typeUrl: string; value: Buffer }[]).map((c) => codec.unpack(c) as { type: string; message: Record<string, unknown> });
}

describe('EVPN routes in GoBGP API form', () => {
  it('a type-3 route carries ingress replication with the VNI as label, RD routerId:index, RT ASN:VNI and the VXLAN encapsulation', () => {
    const path = inclusiveMulticastPath(codec, origin, 100, 7);
    const nlri = codec.unpack(path.nlri!)!;
    expect(nlri.type).toBe('EVPNInclusiveMulticastEthernetTagRoute');
    expect(nlri.message.ipAddress).toBe('10.0.1.1');
    expect(nlri.message.ethernetTag).toBe(0);
    const rd = codec.unpack(nlri.message.rd as { typeUrl: string; value: Buffer })!;
    expect(rd).toEqual({ type: 'RouteDistinguisherIPAddress', message: { admin: '10.0.1.1', assigned: 7 } });
    const attrs = attributes(path);
    expect(attrs.PmsiTunnelAttribute).toMatchObject({ type: PMSI_INGRESS_REPLICATION, label: 100 });
    expect([...(attrs.PmsiTunnelAttribute.id as Buffer)]).toEqual([10, 0, 1, 1]);
    expect(attrs.NextHopAttribute).toEqual({ nextHop: '10.0.1.1' });
    expect(attrs.OriginAttribute).toEqual({ origin: 0 });
    expect(communities(path)).toEqual([
      { type: 'TwoOctetAsSpecificExtended', message: { isTransitive: true, subType: 2, asn: 65000, localAdmin: 100 } },
      { type: 'EncapExtended', message: { tunnelType: TUNNEL_TYPE_VXLAN } },
    ]);
    expect(path.family).toEqual({ afi: 'AFI_L2VPN', safi: 'SAFI_EVPN' });
  });

  it('a type-2 route carries the MAC, the IP, the VNI as label and a MAC mobility sequence above 0', () => {
    const path = macIpPath(codec, origin, 100, 7, '02:18:00:00:00:11', '172.18.0.11', 3);
    const nlri = codec.unpack(path.nlri!)!;
    expect(nlri.type).toBe('EVPNMACIPAdvertisementRoute');
    expect(nlri.message).toMatchObject({ macAddress: '02:18:00:00:00:11', ipAddress: '172.18.0.11', labels: [100], ethernetTag: 0 });
    expect(communities(path).find((c) => c.type === 'MacMobilityExtended')?.message).toEqual({ isSticky: false, sequenceNum: 3 });
    const first = macIpPath(codec, origin, 100, 7, '02:18:00:00:00:11', undefined, 0);
    expect(communities(first).some((c) => c.type === 'MacMobilityExtended')).toBe(false);
    expect(codec.unpack(first.nlri!)!.message.ipAddress).toBe('');
  });

  it('decodes its own encoding back to the same route', () => {
    const imet = decodePath(codec, { ...inclusiveMulticastPath(codec, origin, 2000, 1), neighborIp: '10.0.1.1' });
    expect(imet).toEqual({ kind: 'imet', vni: 2000, vtep: '10.0.1.1', rd: '10.0.1.1:1' });
    const macip = decodePath(codec, macIpPath(codec, { ...origin, vtep: 'fd00::1' }, 100, 2, '02:18:00:00:00:11', 'FD00:0::11', 5));
    expect(macip).toEqual({ kind: 'macip', vni: 100, vtep: 'fd00::1', rd: '10.0.1.1:2', mac: '02:18:00:00:00:11', ip: 'fd00::11', seq: 5 });
  });

  it('reads routes as gobgpd shows what FRR sent: next hop in MP_REACH, no IP written <nil>, upper-case MAC', () => {
    const frr: ApiPath = {
      family: { afi: 'AFI_L2VPN', safi: 'SAFI_EVPN' },
      neighborIp: '10.201.0.2',
      nlri: codec.pack('EVPNMACIPAdvertisementRoute', {
        rd: codec.pack('RouteDistinguisherIPAddress', { admin: '10.201.0.2', assigned: 2 }),
        esi: { type: 0, value: Buffer.alloc(9) },
        macAddress: '02:18:00:00:00:AA',
        ipAddress: '<nil>',
        labels: [100],
      }),
      pattrs: [
        codec.pack('MpReachNLRIAttribute', { family: { afi: 'AFI_L2VPN', safi: 'SAFI_EVPN' }, nextHops: ['10.201.0.2'] }),
        codec.pack('ExtendedCommunitiesAttribute', { communities: [codec.pack('MacMobilityExtended', { sequenceNum: 4 })] }),
      ],
    };
    expect(decodePath(codec, frr)).toEqual({ kind: 'macip', vni: 100, vtep: '10.201.0.2', rd: '10.201.0.2:2', mac: '02:18:00:00:00:aa', ip: undefined, seq: 4 });
    expect(isLocalPath(frr)).toBe(false);
    expect(isLocalPath({ neighborIp: '<nil>' })).toBe(true);
    expect(isLocalPath({})).toBe(true);
  });

  it('skips what it cannot use, with a reason to count', () => {
    const withoutNextHop = macIpPath(codec, origin, 100, 1, '02:00:00:00:00:01', undefined, 0);
    withoutNextHop.pattrs = [];
    expect(decodePath(codec, withoutNextHop)).toEqual({ kind: 'skip', reason: 'no_next_hop' });
    const badMac = macIpPath(codec, origin, 100, 1, 'zz:00:00:00:00:01', undefined, 0);
    expect(decodePath(codec, badMac)).toEqual({ kind: 'skip', reason: 'bad_mac' });
    const noPmsi = inclusiveMulticastPath(codec, origin, 100, 1);
    noPmsi.pattrs = noPmsi.pattrs!.filter((a) => !a.typeUrl.endsWith('PmsiTunnelAttribute'));
    expect(decodePath(codec, noPmsi)).toEqual({ kind: 'skip', reason: 'bad_vni' });
    expect(decodePath(codec, { family: { afi: 'AFI_IP', safi: 'SAFI_UNICAST' }, nlri: codec.pack('IPAddressPrefix', { prefix: '10.0.0.0', prefixLen: 8 }) }))
      .toEqual({ kind: 'skip', reason: 'not_evpn' });
    expect(decodePath(codec, { nlri: codec.pack('EVPNEthernetSegmentRoute', {}) })).toEqual({ kind: 'skip', reason: 'other_route_type' });
    expect(decodePath(codec, { nlri: { typeUrl: 'type.googleapis.com/apipb.EVPNMACIPAdvertisementRoute', value: Buffer.from([0xff, 0xff, 0xff]) } }))
      .toEqual({ kind: 'skip', reason: 'undecodable' });
    expect(decodePath(codec, {})).toEqual({ kind: 'skip', reason: 'undecodable' });
  });

  it('keys a route by what a withdraw names', () => {
    const a = decodePath(codec, macIpPath(codec, origin, 100, 1, '02:00:00:00:00:01', '172.18.0.1', 0));
    const b = decodePath(codec, macIpPath(codec, origin, 100, 1, '02:00:00:00:00:01', '172.18.0.1', 9));
    const c = decodePath(codec, macIpPath(codec, origin, 100, 1, '02:00:00:00:00:01', undefined, 0));
    if (a.kind === 'skip' || b.kind === 'skip' || c.kind === 'skip') throw new Error('not decoded');
    expect(routeKey(a)).toBe(routeKey(b));
    expect(routeKey(a)).not.toBe(routeKey(c));
  });

  it('names the Debian package when the API files are missing', () => {
    expect(() => loadGobgpApi('/nonexistent')).toThrow(ProtoError);
    expect(() => loadGobgpApi('/nonexistent')).toThrow(/apt-get install golang-github-osrg-gobgp-dev/);
  });
});
