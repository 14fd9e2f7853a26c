// planReload: what a reload (SIGHUP, POST /reload) does for each kind of
// change in the file, decided without root, TAPs or the addon.

import { describe, expect, it } from 'vitest';
import { parseConfig, type DaemonConfig } from '../../src/config';
import { describeAction, describeChange, planReload, type ReloadAction } from '../../src/reload-plan';

const A = '10.0.1.41';
const B = '10.0.1.42';
const MAC = '02:00:00:00:00:01';

/** A validated config (defaults filled in) of one network, VNI 100 on br100, with overrides. */
function config(top: Record<string, unknown> = {}, network: Record<string, unknown> = {}, more: Record<string, unknown>[] = []): DaemonConfig {
  return parseConfig({ ...top, networks: [{ vni: 100, bridge: 'br100', peers: [A], ...network }, ...more] });
}

const kinds = (actions: ReloadAction[]) => actions.map((a) => a.kind);

describe('planReload', () => {
  it('plans nothing for the same file, or one that says the same thing differently', () => {
    expect(planReload(config(), config())).toEqual([]);
    const before = config({}, { peers: [A, 'fd00::1'], static: [{ mac: MAC, remote: A }] });
    const after = config({}, { peers: ['fd00:0::0001', A], static: [{ mac: MAC.toUpperCase(), remote: A }] });
    expect(planReload(before, after)).toEqual([]);
  });

  it('adds a network that is new and removes one that is gone, removals first', () => {
    const before = config({}, {}, [{ vni: 200, bridge: 'br200', peers: [A] }]);
    const after = config({}, {}, [{ vni: 300, bridge: 'br300', peers: [B] }]);
    const actions = planReload(before, after);
    expect(actions).toEqual([
      { kind: 'remove-network', vni: 200 },
      { kind: 'add-network', config: after.networks[1] },
    ]);
    expect(actions.map(describeAction)).toEqual(['VNI 200 removed', 'VNI 300 added']);
  });

  it('changes peers in place: new ones added before old ones are removed, addresses canonical', () => {
    const actions = planReload(config({}, { peers: [A, 'fd00::1'] }), config({}, { peers: [B, 'FD00:0:0::1'] }));
    expect(actions).toEqual([{ kind: 'update-network', config: expect.objectContaining({ vni: 100 }), changes: [{ kind: 'add-peer', address: B }, { kind: 'remove-peer', address: A }] }]);
    const [update] = actions;
    if (update.kind !== 'update-network') throw new Error('expected update-network');
    expect(update.changes.map((c) => describeChange(100, c))).toEqual([`VNI 100: peer ${B} added`, `VNI 100: peer ${A} removed`]);
    expect(describeAction(update)).toBeUndefined();
  });

  it('orders static entries around peers: a removed peer loses its entry first, a new entry waits for its new peer', () => {
    const before = config({}, { peers: [A], static: [{ mac: MAC, remote: A }] });
    const after = config({}, { peers: [B], static: [{ mac: '02:00:00:00:00:02', remote: B }] });
    const [update] = planReload(before, after);
    expect(update).toMatchObject({
      kind: 'update-network',
      changes: [
        { kind: 'add-peer', address: B },
        { kind: 'remove-static', mac: MAC },
        { kind: 'remove-peer', address: A },
        { kind: 'add-static', mac: '02:00:00:00:00:02', remote: B },
      ],
    });
  });

  it('moves a static entry to another peer by replacing it, not removing it', () => {
    const before = config({}, { peers: [A, B], static: [{ mac: MAC, remote: A }] });
    const after = config({}, { peers: [A, B], static: [{ mac: MAC, remote: B }] });
    expect(planReload(before, after)).toMatchObject([{ kind: 'update-network', changes: [{ kind: 'add-static', mac: MAC, remote: B }] }]);
  });

  it('changes ageing and the flood limit in place', () => {
    const [update] = planReload(config(), config({}, { ageingSeconds: 60, floodRate: 500, floodBurst: 50 }));
    if (update?.kind !== 'update-network') throw new Error('expected update-network');
    expect(update.changes).toEqual([
      { kind: 'set-ageing', seconds: 60 },
      { kind: 'set-flood-limit', rate: 500, burst: 50 },
    ]);
    expect(update.changes.map((c) => describeChange(100, c))).toEqual(['VNI 100: ageing 60s', 'VNI 100: flood rate 500/s, burst 50']);
    expect(describeChange(100, { kind: 'set-flood-limit', rate: 0, burst: undefined })).toBe('VNI 100: flood rate unlimited');
    expect(describeChange(100, { kind: 'set-flood-limit', rate: 300, burst: undefined })).toBe('VNI 100: flood rate 300/s, burst 300');
  });

  it.each([
    ['bridge', { bridge: 'br-other' }],
    ['Docker network', { bridge: undefined, dockerNetwork: 'vxlan-net' }],
    ['TAP name', { tap: 'tsv-other' }],
    ['MTU', { mtu: 1400 }],
    ['FDB limit', { maxAddresses: 100 }],
  ])('restarts a network whose %s changed, whatever else changed with it', (_, change) => {
    const after = config({}, { ...change, peers: [B] });
    const actions = planReload(config(), after);
    expect(actions).toEqual([{ kind: 'restart-network', config: after.networks[0] }]);
    expect(describeAction(actions[0])).toBe('VNI 100 restarted');
  });

  it('changes the learned-remote limit in place', () => {
    const [update] = planReload(config(), config({}, { maxRemotes: 16 }));
    if (update?.kind !== 'update-network') throw new Error('expected update-network');
    expect(update.changes).toEqual([{ kind: 'set-max-remotes', limit: 16 }]);
    expect(describeChange(100, update.changes[0])).toBe('VNI 100: max remotes 16');
  });

  it('changes learnRemotes and the log level at once', () => {
    const actions = planReload(config(), config({ learnRemotes: true, logLevel: 'debug' }));
    expect(actions).toEqual([
      { kind: 'set-learn-remotes', enabled: true },
      { kind: 'set-log-level', level: 'debug' },
    ]);
    expect(actions.map(describeAction)).toEqual(['learnRemotes true', 'logLevel debug']);
  });

  it.each([
    ['port', { port: 4790 }],
    ['local', { local: '10.0.1.40' }],
    ['dev', { dev: 'eth1' }],
    ['dontFragment', { dontFragment: 'inherit' }],
    ['control', { control: '127.0.0.1:9000' }],
    ['controlTokenFile', { controlTokenFile: '/etc/tsvtep/token' }],
    ['metrics', { metrics: '127.0.0.1:9477' }],
    ['offload', { offload: false }],
    ['sourcePorts', { sourcePorts: 1 }],
    ['etcd', { etcd: { endpoints: ['http://10.0.1.1:2379'] } }],
  ])('keeps %s, which takes a restart, and says so', (setting, change) => {
    const actions = planReload(config(), config(change));
    expect(actions).toEqual([{ kind: 'keep-setting', setting }]);
    expect(describeAction(actions[0])).toBeUndefined();
  });

  it('keeps evpn, which takes a restart, and says so', () => {
    const local = '10.0.1.40';
    expect(planReload(config({ local }), config({ local, evpn: { api: '127.0.0.1:50051' } }))).toEqual([{ kind: 'keep-setting', setting: 'evpn' }]);
  });

  it('keeps suppressArp, which takes a restart, and says so', () => {
    const etcd = { endpoints: ['http://10.0.1.1:2379'], fdb: true };
    expect(planReload(config({ etcd }), config({ etcd, suppressArp: true }))).toEqual([{ kind: 'keep-setting', setting: 'suppressArp' }]);
  });

  it('puts settings first, then removals, then networks in the order of the new file', () => {
    const before = config({}, {}, [{ vni: 200, bridge: 'br200', peers: [A] }]);
    const after = parseConfig({
      port: 4790,
      logLevel: 'warn',
      networks: [
        { vni: 300, bridge: 'br300', peers: [A] },
        { vni: 100, bridge: 'br100', peers: [A], ageingSeconds: 10 },
      ],
    });
    expect(kinds(planReload(before, after))).toEqual(['keep-setting', 'set-log-level', 'remove-network', 'add-network', 'update-network']);
  });
});
