import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config';
import { loadConfigFile } from '../../src/config-file';

const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

function problems(input: unknown): string {
  try {
    parseConfig(input);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected the config to be rejected');
}

const net = (vni: number, extra: object = {}) => ({ vni, bridge: `br${vni}`, peers: ['10.0.1.42'], ...extra });

describe('configuration', () => {
  it('fills defaults', () => {
    const config = parseConfig({ networks: [net(100)] });
    expect(config.port).toBe(4789);
    expect(config.networks[0].ageingSeconds).toBe(300);
    expect(config.networks[0].static).toEqual([]);
    expect(config.learnRemotes).toBe(false);
  });

  it('names the field and the problem', () => {
    expect(problems({ networks: [net(100), net(100)] })).toContain('networks[1].vni: VNI 100 appears twice');
    expect(problems({ networks: [net(1, { tap: 'x' }), net(2, { tap: 'x' })] })).toContain('TAP x is used by two networks');
    expect(problems({ local: '10.0.1.42', networks: [net(1)] })).toContain('peer 10.0.1.42 is our own --local address');
    expect(problems({ networks: [net(16777216)] })).toContain('networks[0].vni: 16777216 is out of range');
    expect(problems({ networks: [net(1, { peers: ['10.0.1'] })] })).toContain('10.0.1 is not an IPv4 or IPv6 address');
    expect(problems({ networks: [net(1, { peers: ['10.0.1.42', '::ffff:10.0.1.42'] })] })).toContain('listed twice');
    expect(problems({ networks: [net(1, { static: [{ mac: '02:00:00:00:00:01', remote: '10.0.1.9' }] })] })).toContain(
      '10.0.1.9 is not a peer of VNI 1',
    );
    expect(problems({ networks: [net(1, { static: [{ mac: 'zz', remote: '10.0.1.42' }] })] })).toContain('zz is not a MAC address');
    expect(problems({ networks: [] })).toContain('no networks configured');
    expect(problems({ netwroks: [net(1)] })).toContain('netwroks');
  });

  it('accepts IPv4 and IPv6 peers mixed, and static entries to peers', () => {
    const config = parseConfig({
      networks: [net(1000, { peers: ['10.0.1.42', 'fd00::42'], static: [{ mac: '02:42:ac:12:00:0c', remote: 'fd00::42' }] })],
    });
    expect(config.networks[0].peers).toHaveLength(2);
  });
});

describe('configuration file', () => {
  it('reads YAML and lets flags override top-level settings', async () => {
    const p = file(
      'ok.yaml',
      'port: 4790\nnetworks:\n  - vni: 1000\n    bridge: br1000\n    peers: [10.0.1.42, "fd00::42"]\n  - vni: 2000\n    bridge: br2000\n    peers: [10.0.1.42]\n',
    );
    const config = await loadConfigFile(p, { port: 5000, logLevel: undefined });
    expect(config.port).toBe(5000);
    expect(config.networks.map((n) => n.vni)).toEqual([1000, 2000]);
  });

  it('reads JSON', async () => {
    const config = await loadConfigFile(file('ok.json', JSON.stringify({ networks: [net(7)] })));
    expect(config.networks[0].vni).toBe(7);
  });

  it('says which file and line is broken', async () => {
    await expect(loadConfigFile(file('bad.yaml', 'networks:\n  - vni: [1\n'))).rejects.toThrow(/bad\.yaml line \d+/);
    await expect(loadConfigFile(path.join(dir, 'missing.yaml'))).rejects.toThrow(/does not exist/);
    await expect(loadConfigFile(file('list.yaml', '- 1\n'))).rejects.toThrow(/expected a mapping/);
    await expect(loadConfigFile(file('dup.yaml', 'networks: [{vni: 1, bridge: b, peers: [1.2.3.4]}, {vni: 1, bridge: c, peers: [1.2.3.4]}]'))).rejects.toThrow(
      /dup\.yaml: networks\[1\]\.vni: VNI 1 appears twice/,
    );
  });

  it('needs peers unless etcd is given, and checks the etcd section', () => {
    expect(problems({ networks: [net(1, { peers: [] })] })).toContain('needs at least one peer (--peer ADDRESS), or --etcd URL');
    const config = parseConfig({ networks: [net(1, { peers: [] })], etcd: { endpoints: ['http://10.0.1.1:2379'] } });
    expect(config.etcd).toEqual({ endpoints: ['http://10.0.1.1:2379'], prefix: '/tsvtep/', ttlSeconds: 10, fdb: false });
    expect(problems({ networks: [net(1)], suppressArp: true })).toContain('needs MAC/IP distribution (--etcd-fdb or --evpn)');
    expect(parseConfig({ networks: [net(1)], etcd: { endpoints: ['http://e:2379'], prefix: '/fleet' } }).etcd?.prefix).toBe('/fleet/');
    expect(problems({ networks: [net(1)], etcd: { endpoints: ['10.0.1.1:2379'] } })).toContain('is not an etcd URL');
    expect(problems({ networks: [net(1)], etcd: { endpoints: [] } })).toContain('needs at least one endpoint');
    expect(problems({ networks: [net(1)], etcd: { endpoints: ['http://e:2379'], ttlSeconds: 1 } })).toContain('must be at least 2');
    expect(problems({ networks: [net(1)], etcd: { endpoints: ['http://e:2379'], ca: '/ca.pem' } })).toContain('TLS options need https:// endpoints');
    expect(problems({ networks: [net(1)], etcd: { endpoints: ['https://e:2379'], cert: '/c.pem' } })).toContain('give a client certificate and its key together');
    expect(problems({ networks: [net(1)], local: '10.0.1.41', etcd: { endpoints: ['http://e:2379'] }, evpn: { api: '127.0.0.1:50051' } })).toContain('give --etcd or --evpn, not both');
    expect(parseConfig({ networks: [net(1, { peers: [] })], local: '10.0.1.41', evpn: { api: '127.0.0.1:50051' }, suppressArp: true }).suppressArp).toBe(true);
  });
});
