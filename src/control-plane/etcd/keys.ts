// The key layout under the etcd prefix, and the checks every key and value
// read from etcd passes before it is believed. Anyone who can write to the
// prefix can write anything there, so a record is taken only when its key and
// value are well-formed and agree; everything else is a skip with a reason.
//
//   <prefix>v1/members/<vni>/<vtep>        {"vtep":"10.0.1.41","host":"h1"}
//   <prefix>v1/macs/<vni>/<mac>/<vtep>     {"ips":["172.18.0.11"],"seq":3}
//
// Every key of a host is put under that host's one lease: when the lease ends
// (the host stopped, or lost etcd for longer than the TTL), etcd deletes them
// all at once and every watcher hears of it.

import { isIP } from 'node:net';
import { canonicalAddress } from '../../core/address';
import { formatMac, parseMac } from '../../core/ethernet';
import { VNI_MAX } from '../../core/vxlan';

export const LAYOUT_VERSION = 'v1';
/** Values larger than this are not ours (ours are well under 200 bytes). */
export const MAX_VALUE_BYTES = 4096;
export const MAX_IPS_PER_MAC = 8;

export type SkipReason = 'bad_key' | 'bad_json' | 'bad_address' | 'vni_out_of_range' | 'too_large' | 'over_limit';
export const SKIP_REASONS: readonly SkipReason[] = ['bad_key', 'bad_json', 'bad_address', 'vni_out_of_range', 'too_large', 'over_limit'];

export interface MemberRecord {
  kind: 'member';
  vni: number;
  vtep: string;
}

export interface MacRecord {
  kind: 'mac';
  vni: number;
  mac: string;
  vtep: string;
  ips: string[];
  seq: number;
}

export type ParsedKey = MemberRecord | MacRecord | { kind: 'skip'; reason: SkipReason } | { kind: 'foreign' };

export function memberKey(prefix: string, vni: number, vtep: string): string {
  return `${prefix}${LAYOUT_VERSION}/members/${vni}/${vtep}`;
}

export function memberValue(vtep: string, host: string): string {
  return JSON.stringify({ vtep, host });
}

export function macKey(prefix: string, vni: number, mac: string, vtep: string): string {
  return `${prefix}${LAYOUT_VERSION}/macs/${vni}/${mac}/${vtep}`;
}

export function macValue(ips: readonly string[], seq: number): string {
  return JSON.stringify({ ips, seq });
}

/**
 * What a key under the prefix holds. 'foreign' is a key of another layout
 * version (a newer tsvtep): not ours to judge. A value is only parsed when
 * the key is one of ours.
 */
export function parseRecord(prefix: string, key: string, value: Buffer | undefined): ParsedKey {
  if (!key.startsWith(prefix)) return { kind: 'skip', reason: 'bad_key' };
  const parts = key.slice(prefix.length).split('/');
  if (parts[0] !== LAYOUT_VERSION) return /^v\d+$/.test(parts[0]) ? { kind: 'foreign' } : { kind: 'skip', reason: 'bad_key' };
  const kind = parts[1];
  if ((kind !== 'members' || parts.length !== 4) && (kind !== 'macs' || parts.length !== 5)) return { kind: 'skip', reason: 'bad_key' };
  const vni = parseVni(parts[2]);
  if (typeof vni === 'string') return { kind: 'skip', reason: vni };
  const vtep = usableVtep(parts[parts.length - 1]);
  if (vtep === undefined) return { kind: 'skip', reason: 'bad_address' };
  if (value === undefined) {
    // A delete: the key alone says what went.
    if (kind === 'members') return { kind: 'member', vni, vtep };
    const mac = canonicalMac(parts[3]);
    return mac === undefined ? { kind: 'skip', reason: 'bad_key' } : { kind: 'mac', vni, mac, vtep, ips: [], seq: 0 };
  }
  if (value.length > MAX_VALUE_BYTES) return { kind: 'skip', reason: 'too_large' };
  let body: unknown;
  try {
    body = JSON.parse(value.toString('utf8'));
  } catch {
    return { kind: 'skip', reason: 'bad_json' };
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { kind: 'skip', reason: 'bad_json' };
  const fields = body as Record<string, unknown>;
  if (kind === 'members') {
    if (typeof fields.vtep !== 'string' || canonicalOrUndefined(fields.vtep) !== vtep) return { kind: 'skip', reason: 'bad_address' };
    return { kind: 'member', vni, vtep };
  }
  const mac = canonicalMac(parts[3]);
  if (mac === undefined) return { kind: 'skip', reason: 'bad_key' };
  const seq = fields.seq ?? 0;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return { kind: 'skip', reason: 'bad_json' };
  const ipsField = fields.ips ?? [];
  if (!Array.isArray(ipsField) || ipsField.length > MAX_IPS_PER_MAC) return { kind: 'skip', reason: 'bad_json' };
  const ips: string[] = [];
  for (const ip of ipsField) {
    const canonical = typeof ip === 'string' ? canonicalOrUndefined(ip) : undefined;
    if (canonical === undefined) return { kind: 'skip', reason: 'bad_address' };
    ips.push(canonical);
  }
  return { kind: 'mac', vni, mac, vtep, ips, seq };
}

function parseVni(text: string): number | SkipReason {
  if (!/^\d{1,9}$/.test(text)) return 'bad_key';
  const vni = Number(text);
  return vni > VNI_MAX ? 'vni_out_of_range' : vni;
}

function canonicalOrUndefined(text: string): string | undefined {
  if (text.length > 45 || isIP(text) === 0) return undefined;
  return canonicalAddress(text);
}

/** A unicast address a VTEP can have: not unspecified, multicast or broadcast. */
function usableVtep(text: string): string | undefined {
  const address = canonicalOrUndefined(text);
  if (address === undefined) return undefined;
  if (address === '0.0.0.0' || address === '::' || address === '255.255.255.255') return undefined;
  if (/^(22[4-9]|23\d)\./.test(address) || /^ff/i.test(address)) return undefined;
  return address;
}

function canonicalMac(text: string): string | undefined {
  const parsed = text.length === 17 ? parseMac(text) : null;
  return parsed ? formatMac(parsed.high, parsed.low) : undefined;
}

/** The end of the range of keys that start with prefix (etcd's "prefix + 1"). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
