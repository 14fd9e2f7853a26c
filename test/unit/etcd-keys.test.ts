// The etcd key layout and what happens to keys and values that anyone with
// write access to the prefix could put there.

import { describe, expect, it } from 'vitest';
import { macKey, macValue, memberKey, memberValue, parseRecord, prefixEnd } from '../../src/control-plane/etcd/keys';
import { EtcdMirror, MAX_MEMBERS_PER_VNI } from '../../src/control-plane/etcd/mirror';

const P = '/tsvtep/';
const value = (text: string): Buffer => Buffer.from(text);

describe('etcd keys', () => {
  it('reads back what a daemon writes', () => {
    expect(parseRecord(P, memberKey(P, 100, '10.0.1.41'), value(memberValue('10.0.1.41', 'h1')))).toEqual({ kind: 'member', vni: 100, vtep: '10.0.1.41' });
    expect(parseRecord(P, macKey(P, 100, '02:00:01:00:00:64', 'fd00::41'), value(macValue(['172.18.0.11'], 3)))).toEqual({
      kind: 'mac',
      vni: 100,
      mac: '02:00:01:00:00:64',
      vtep: 'fd00::41',
      ips: ['172.18.0.11'],
      seq: 3,
    });
  });

  it('skips malformed keys and values with a reason each', () => {
    const reason = (key: string, text?: string): string => {
      const parsed = parseRecord(P, key, text === undefined ? value('{"vtep":"10.0.1.41"}') : value(text));
      return parsed.kind === 'skip' ? parsed.reason : parsed.kind;
    };
    expect(reason('/tsvtep/v1/members/100/10.0.1.41', '{not json')).toBe('bad_json');
    expect(reason('/tsvtep/v1/members/100/10.0.1.41', '[1,2]')).toBe('bad_json');
    expect(reason('/tsvtep/v1/members/100/10.0.1.41', '{"vtep":"10.0.1.42"}')).toBe('bad_address');
    expect(reason('/tsvtep/v1/members/100/10.0.1.999')).toBe('bad_address');
    expect(reason('/tsvtep/v1/members/100/224.0.0.1', '{"vtep":"224.0.0.1"}')).toBe('bad_address');
    expect(reason('/tsvtep/v1/members/100/0.0.0.0', '{"vtep":"0.0.0.0"}')).toBe('bad_address');
    expect(reason('/tsvtep/v1/members/16777216/10.0.1.41')).toBe('vni_out_of_range');
    expect(reason('/tsvtep/v1/members/-1/10.0.1.41')).toBe('bad_key');
    expect(reason('/tsvtep/v1/members/100')).toBe('bad_key');
    expect(reason('/tsvtep/v1/members/100/10.0.1.41/extra')).toBe('bad_key');
    expect(reason('/tsvtep/garbage')).toBe('bad_key');
    expect(reason('/tsvtep/v1/members/100/10.0.1.41', `{"vtep":"10.0.1.41","pad":"${'x'.repeat(5000)}"}`)).toBe('too_large');
    expect(reason('/tsvtep/v1/macs/100/zz:00:01:00:00:64/10.0.1.41', '{"seq":1}')).toBe('bad_key');
    expect(reason('/tsvtep/v1/macs/100/02:00:01:00:00:64/10.0.1.41', '{"seq":-1}')).toBe('bad_json');
    expect(reason('/tsvtep/v1/macs/100/02:00:01:00:00:64/10.0.1.41', '{"ips":["nope"]}')).toBe('bad_address');
    // Another layout version is a newer tsvtep's, not garbage.
    expect(reason('/tsvtep/v2/anything/at/all')).toBe('foreign');
  });

  it('ranges over exactly the keys with the prefix', () => {
    expect(prefixEnd(Buffer.from('/tsvtep/')).toString()).toBe('/tsvtep0');
    expect([...prefixEnd(Buffer.from([0x61, 0xff]))]).toEqual([0x62]);
  });
});

describe('the mirror of the prefix', () => {
  it('keeps only the VNIs served, not our own records, and says which VNIs changed', () => {
    const mirror = new EtcdMirror(P, '10.0.1.41');
    mirror.serve([100]);
    mirror.put(memberKey(P, 100, '10.0.1.41'), value(memberValue('10.0.1.41', 'us')));
    mirror.put(memberKey(P, 100, '10.0.1.42'), value(memberValue('10.0.1.42', 'h2')));
    mirror.put(memberKey(P, 200, '10.0.1.43'), value(memberValue('10.0.1.43', 'h3')));
    expect(mirror.takeDirty()).toEqual([100]);
    expect([...mirror.state(100).members]).toEqual(['10.0.1.42']);
    mirror.delete(memberKey(P, 100, '10.0.1.42'));
    expect(mirror.takeDirty()).toEqual([100]);
    expect(mirror.state(100).members.size).toBe(0);
  });

  it('counts 100 000 hostile keys, and keeps at most its limit of members', () => {
    const mirror = new EtcdMirror(P, '10.0.1.41');
    mirror.serve([100]);
    for (let i = 0; i < 100_000; i++) {
      const address = `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`;
      if (i % 2 === 0) mirror.put(memberKey(P, 100, address), value(memberValue(address, 'x')));
      else mirror.put(`/tsvtep/v1/members/100/${address}`, value('{'));
    }
    expect(mirror.memberCount(100)).toBe(MAX_MEMBERS_PER_VNI);
    expect(mirror.skipped.bad_json).toBe(50_000);
    expect(mirror.skipped.over_limit).toBe(50_000 - MAX_MEMBERS_PER_VNI);
  });

  it('resolves a MAC behind two VTEPs by sequence number, then by the lower VTEP address', () => {
    const mirror = new EtcdMirror(P, '10.0.1.41');
    mirror.serve([100]);
    for (const vtep of ['10.0.1.42', '10.0.1.43']) mirror.put(memberKey(P, 100, vtep), value(memberValue(vtep, 'h')));
    const mac = '02:00:02:00:00:64';
    mirror.put(macKey(P, 100, mac, '10.0.1.42'), value(macValue([], 2)));
    mirror.put(macKey(P, 100, mac, '10.0.1.43'), value(macValue([], 1)));
    expect(mirror.state(100).macs.get(mac)?.vtep).toBe('10.0.1.42');
    mirror.put(macKey(P, 100, mac, '10.0.1.43'), value(macValue([], 2)));
    expect(mirror.state(100).macs.get(mac)?.vtep).toBe('10.0.1.42');
    mirror.put(macKey(P, 100, mac, '10.0.1.43'), value(macValue([], 3)));
    expect(mirror.state(100).macs.get(mac)?.vtep).toBe('10.0.1.43');
    expect(mirror.holder(100, mac)).toMatchObject({ vtep: '10.0.1.43', seq: 3 });
    // A MAC behind a VTEP that is not a member is not believed.
    mirror.put(macKey(P, 100, '02:00:09:00:00:64', '10.0.1.99'), value(macValue([], 9)));
    expect(mirror.state(100).macs.has('02:00:09:00:00:64')).toBe(false);
  });
});
