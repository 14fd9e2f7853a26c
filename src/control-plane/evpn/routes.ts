// EVPN routes (RFC 7432, RFC 8365 for VXLAN) as GoBGP's API carries them:
// tsvtep's announcements turned into apipb.Path objects, and paths received
// from gobgpd turned back into what tsvtep imports. Pure: the protobuf `Any`
// packing is injected (proto.ts gives the real one), so this runs in unit
// tests without gobgpd.
//
// What tsvtep announces, per VNI v it serves, as FRR's auto settings expect:
//   type 3 (inclusive multicast ethernet tag): RD routerId:index, ethernet tag 0,
//          originating router = the VTEP address; PMSI tunnel ingress
//          replication (type 6) with label v; next hop the VTEP address;
//   type 2 (MAC/IP advertisement), per local MAC: same RD, ESI 0, tag 0,
//          the MAC (and one IP, or none), label v; MAC mobility sequence when
//          above 0;
// both with RT ASN:v (FRR's auto RT for iBGP) and the encapsulation
// extended community tunnel type 8 (VXLAN, RFC 9012).
// An imported route's VNI is its label, as FRR reads it for VXLAN.

import { isIP } from 'node:net';
import { addressRecord, canonicalAddress } from '../../core/address';
import { formatMac, parseMac } from '../../core/ethernet';
import { VNI_MAX } from '../../core/vxlan';

/** A protobuf Any as @grpc/proto-loader hands it over (camelCase fields). */
export interface AnyMessage {
  typeUrl: string;
  value: Buffer | Uint8Array;
}

/** Packs and unpacks the messages inside Any fields (proto.ts: protobufjs over GoBGP's .proto files). */
export interface AnyCodec {
  pack(typeName: string, message: Record<string, unknown>): AnyMessage;
  /** The message's short type name (e.g. 'EVPNMACIPAdvertisementRoute') and its fields, or undefined if unknown. */
  unpack(any: AnyMessage): { type: string; message: Record<string, unknown> } | undefined;
}

/** apipb.Path, the fields tsvtep reads or writes. */
export interface ApiPath {
  nlri?: AnyMessage | null;
  pattrs?: AnyMessage[];
  family?: { afi: string | number; safi: string | number } | null;
  isWithdraw?: boolean;
  neighborIp?: string;
  sourceId?: string;
  uuid?: Buffer | Uint8Array;
}

export const EVPN_FAMILY = { afi: 'AFI_L2VPN', safi: 'SAFI_EVPN' } as const;

/** BGP tunnel type for VXLAN in the encapsulation extended community (RFC 9012 / RFC 8365). */
export const TUNNEL_TYPE_VXLAN = 8;
/** PMSI tunnel type: ingress replication (RFC 6514). */
export const PMSI_INGRESS_REPLICATION = 6;
/** Route target sub-type of the two-octet AS specific extended community. */
const SUBTYPE_ROUTE_TARGET = 0x02;
const ORIGIN_IGP = 0;

/** What identifies this host's routes. */
export interface Originator {
  /** BGP router ID, an IPv4 address: the admin part of every RD. */
  readonly routerId: string;
  /** The AS of the route targets (ASN:VNI). */
  readonly asn: number;
  /** This host's VTEP address (canonical): next hop and originating router. */
  readonly vtep: string;
}

/** Type 3: "I am a VTEP for vni at vtep" (builds the flood lists). */
export interface InclusiveMulticastRoute {
  readonly kind: 'imet';
  readonly vni: number;
  readonly vtep: string;
  readonly rd: string;
}

/** Type 2: "mac (ip) lives behind vtep in vni". */
export interface MacIpRoute {
  readonly kind: 'macip';
  readonly vni: number;
  readonly vtep: string;
  readonly rd: string;
  readonly mac: string;
  /** Canonical IP, or undefined for a MAC-only route. */
  readonly ip: string | undefined;
  readonly seq: number;
}

export type EvpnRoute = InclusiveMulticastRoute | MacIpRoute;

/** A path that is not an EVPN route tsvtep can use; the reason is a counter key. */
export interface SkippedPath {
  readonly kind: 'skip';
  readonly reason: 'not_evpn' | 'other_route_type' | 'bad_vni' | 'bad_address' | 'bad_mac' | 'no_next_hop' | 'undecodable';
}

function routeDistinguisher(codec: AnyCodec, origin: Originator, rdIndex: number): AnyMessage {
  return codec.pack('RouteDistinguisherIPAddress', { admin: origin.routerId, assigned: rdIndex });
}

function commonAttributes(codec: AnyCodec, origin: Originator, vni: number, extra: AnyMessage[] = []): AnyMessage[] {
  return [
    codec.pack('OriginAttribute', { origin: ORIGIN_IGP }),
    codec.pack('NextHopAttribute', { nextHop: origin.vtep }),
    codec.pack('ExtendedCommunitiesAttribute', {
      communities: [
        codec.pack('TwoOctetAsSpecificExtended', { isTransitive: true, subType: SUBTYPE_ROUTE_TARGET, asn: origin.asn, localAdmin: vni }),
        codec.pack('EncapExtended', { tunnelType: TUNNEL_TYPE_VXLAN }),
        ...extra,
      ],
    }),
  ];
}

/** The type-3 route announcing this host as a VTEP of vni. */
export function inclusiveMulticastPath(codec: AnyCodec, origin: Originator, vni: number, rdIndex: number): ApiPath {
  const pattrs = commonAttributes(codec, origin, vni);
  pattrs.push(codec.pack('PmsiTunnelAttribute', { flags: 0, type: PMSI_INGRESS_REPLICATION, label: vni, id: addressBytes(origin.vtep) }));
  return {
    family: EVPN_FAMILY,
    nlri: codec.pack('EVPNInclusiveMulticastEthernetTagRoute', {
      rd: routeDistinguisher(codec, origin, rdIndex),
      ethernetTag: 0,
      ipAddress: origin.vtep,
    }),
    pattrs,
  };
}

/** The type-2 route announcing mac (with ip, if given) behind this host in vni. */
export function macIpPath(codec: AnyCodec, origin: Originator, vni: number, rdIndex: number, mac: string, ip: string | undefined, seq: number): ApiPath {
  const mobility = seq > 0 ? [codec.pack('MacMobilityExtended', { isSticky: false, sequenceNum: seq })] : [];
  return {
    family: EVPN_FAMILY,
    nlri: codec.pack('EVPNMACIPAdvertisementRoute', {
      rd: routeDistinguisher(codec, origin, rdIndex),
      esi: { type: 0, value: Buffer.alloc(9) },
      ethernetTag: 0,
      macAddress: mac,
      ipAddress: ip ?? '',
      labels: [vni],
    }),
    pattrs: commonAttributes(codec, origin, vni, mobility),
  };
}

/** Reads a received path; anything tsvtep cannot use is a SkippedPath with a reason. */
export function decodePath(codec: AnyCodec, path: ApiPath): EvpnRoute | SkippedPath {
  if (!path.nlri) return skip('undecodable');
  if (path.family && !isEvpnFamily(path.family)) return skip('not_evpn');
  const nlri = safeUnpack(codec, path.nlri);
  if (!nlri) return skip('undecodable');
  const attributes = (path.pattrs ?? []).map((a) => safeUnpack(codec, a)).filter((a) => a !== undefined);
  const attribute = (type: string) => attributes.find((a) => a.type === type)?.message;
  const nextHop = nextHopOf(attribute('NextHopAttribute'), attribute('MpReachNLRIAttribute'));
  const rd = formatRd(codec, nlri.message.rd as AnyMessage | undefined);

  if (nlri.type === 'EVPNInclusiveMulticastEthernetTagRoute') {
    const pmsi = attribute('PmsiTunnelAttribute');
    const vni = Number(pmsi?.label ?? NaN);
    if (!validVni(vni)) return skip('bad_vni');
    const vtep = canonicalOrUndefined(String(nlri.message.ipAddress ?? '')) ?? nextHop;
    if (vtep === undefined) return skip('bad_address');
    return { kind: 'imet', vni, vtep, rd };
  }
  if (nlri.type === 'EVPNMACIPAdvertisementRoute') {
    const labels = (nlri.message.labels as number[] | undefined) ?? [];
    const vni = Number(labels[0] ?? NaN);
    if (!validVni(vni)) return skip('bad_vni');
    if (nextHop === undefined) return skip('no_next_hop');
    const parsed = parseMac(String(nlri.message.macAddress ?? ''));
    if (!parsed) return skip('bad_mac');
    const ip = canonicalOrUndefined(String(nlri.message.ipAddress ?? ''));
    const communities = attribute('ExtendedCommunitiesAttribute')?.communities as AnyMessage[] | undefined;
    let seq = 0;
    for (const community of communities ?? []) {
      const decoded = safeUnpack(codec, community);
      if (decoded?.type === 'MacMobilityExtended') seq = Number(decoded.message.sequenceNum ?? 0);
    }
    return { kind: 'macip', vni, vtep: nextHop, rd, mac: formatMac(parsed.high, parsed.low), ip, seq };
  }
  return skip('other_route_type');
}

/** The identity of a route in the table (what a withdraw names): its NLRI. */
export function routeKey(route: EvpnRoute): string {
  if (route.kind === 'imet') return `3|${route.rd}|${route.vni}|${route.vtep}`;
  return `2|${route.rd}|${route.vni}|${route.mac}|${route.ip ?? ''}`;
}

/** Whether a path came from this host's own gobgpd API (AddPath) rather than from a BGP neighbour. */
export function isLocalPath(path: ApiPath): boolean {
  const neighbor = path.neighborIp ?? '';
  return neighbor === '' || neighbor === '<nil>';
}

function isEvpnFamily(family: { afi: string | number; safi: string | number }): boolean {
  return (family.afi === 'AFI_L2VPN' || family.afi === 25) && (family.safi === 'SAFI_EVPN' || family.safi === 70);
}

function nextHopOf(nextHop: Record<string, unknown> | undefined, mpReach: Record<string, unknown> | undefined): string | undefined {
  const fromMp = (mpReach?.nextHops as string[] | undefined)?.[0];
  return canonicalOrUndefined(String(nextHop?.nextHop ?? fromMp ?? ''));
}

function formatRd(codec: AnyCodec, rd: AnyMessage | undefined): string {
  if (!rd) return '';
  const decoded = safeUnpack(codec, rd);
  if (!decoded) return '?';
  return `${String(decoded.message.admin)}:${String(decoded.message.assigned)}`;
}

function safeUnpack(codec: AnyCodec, any: AnyMessage): { type: string; message: Record<string, unknown> } | undefined {
  try {
    return codec.unpack(any);
  } catch {
    return undefined;
  }
}

/** gobgpd writes an absent IP as '', '<nil>', or the unspecified address. */
function canonicalOrUndefined(text: string): string | undefined {
  if (isIP(text) === 0) return undefined;
  const canonical = canonicalAddress(text);
  return canonical === '0.0.0.0' || canonical === '::' ? undefined : canonical;
}

function validVni(vni: number): boolean {
  return Number.isInteger(vni) && vni >= 0 && vni <= VNI_MAX;
}

/** The PMSI tunnel identifier: the VTEP address as 4 or 16 bytes. */
function addressBytes(address: string): Buffer {
  const record = addressRecord(address, 0);
  return Buffer.from(isIP(address) === 4 ? record.subarray(12, 16) : record.subarray(0, 16));
}

function skip(reason: SkippedPath['reason']): SkippedPath {
  return { kind: 'skip', reason };
}
