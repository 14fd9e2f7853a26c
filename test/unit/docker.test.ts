// The Docker Engine client against a fake engine on a Unix socket: which
// bridge a network uses, and the one-line errors (no engine, no such network,
// not a bridge network); DOCKER_HOST as the docker CLI reads it; and the
// configuration's rule of one bridge or one Docker network per VNI.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config';
import { loadConfigFile } from '../../src/config-file';
import { bridgeOfNetwork, DEFAULT_DOCKER_SOCKET, DockerError, dockerNetworkBridge, dockerSocketPath } from '../../src/io/docker';

const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-docker-unit-'));
const socket = path.join(dir, 'docker.sock');
const requests: string[] = [];

/** What the fake engine knows: GET /networks/{name} answers from here. */
const NETWORKS: Record<string, { status: number; body: unknown }> = {
  'vxlan-net': { status: 200, body: { Name: 'vxlan-net', Id: 'c43287381077aa55bb66cc77dd88ee99ff00112233445566778899aabbccddee', Driver: 'bridge', Options: {} } },
  bridge: { status: 200, body: { Name: 'bridge', Id: '982c9e8e9e40ffff', Driver: 'bridge', Options: { 'com.docker.network.bridge.name': 'docker0' } } },
  'no-options': { status: 200, body: { Name: 'no-options', Id: '0123456789abcdef0123', Driver: 'bridge', Options: null } },
  'mv-net': { status: 200, body: { Name: 'mv-net', Id: 'abcdefabcdef0000', Driver: 'macvlan', Options: { parent: 'eth0' } } },
  overlay: { status: 200, body: { Name: 'overlay', Id: 'ffffeeeeddddcccc', Driver: 'overlay' } },
  broken: { status: 500, body: { message: 'something broke inside' } },
};

let server: Server;
beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const name = decodeURIComponent((req.url ?? '').replace(/^\/networks\//, ''));
    const known = NETWORKS[name];
    const status = known?.status ?? 404;
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(known?.body ?? { message: `network ${name} not found` }));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe('Docker Engine client', () => {
  it('asks GET /networks/NAME and returns br- and the first 12 characters of the ID', async () => {
    expect(await dockerNetworkBridge('vxlan-net', socket)).toBe('br-c43287381077');
    expect(requests).toContain('GET /networks/vxlan-net');
    expect(await dockerNetworkBridge('no-options', socket)).toBe('br-0123456789ab');
  });

  it('uses the com.docker.network.bridge.name option when the network sets it', async () => {
    expect(await dockerNetworkBridge('bridge', socket)).toBe('docker0');
    expect(bridgeOfNetwork({ Id: 'x', Options: { 'com.docker.network.bridge.name': 'mybr' } })).toBe('mybr');
  });

  it('refuses networks whose driver is not bridge, naming the driver', async () => {
    await expect(dockerNetworkBridge('mv-net', socket)).rejects.toThrow(/^Docker network mv-net uses the macvlan driver; tsvtep attaches to bridge networks only/);
    await expect(dockerNetworkBridge('overlay', socket)).rejects.toThrow(/uses the overlay driver/);
  });

  it('says when the network does not exist', async () => {
    await expect(dockerNetworkBridge('nope', socket)).rejects.toThrow('Docker network nope does not exist (docker network ls lists networks)');
  });

  it("passes on the engine's own message for other answers", async () => {
    await expect(dockerNetworkBridge('broken', socket)).rejects.toThrow('the Docker Engine answered 500 for network broken: something broke inside');
  });

  it('says Docker is not running when nothing listens, or no socket is there', async () => {
    const stale = path.join(dir, 'stale.sock');
    writeFileSync(stale, '');
    await expect(dockerNetworkBridge('vxlan-net', path.join(dir, 'absent.sock'))).rejects.toThrow(/^Docker is not running: nothing listens on .*absent\.sock/);
    await expect(dockerNetworkBridge('vxlan-net', stale)).rejects.toThrow(DockerError);
  });

  it('finds the socket as the docker CLI does', () => {
    expect(dockerSocketPath({})).toBe(DEFAULT_DOCKER_SOCKET);
    expect(dockerSocketPath({ DOCKER_HOST: '' })).toBe(DEFAULT_DOCKER_SOCKET);
    expect(dockerSocketPath({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' })).toBe('/run/user/1000/docker.sock');
    expect(() => dockerSocketPath({ DOCKER_HOST: 'tcp://10.0.1.42:2375' })).toThrow(/DOCKER_HOST=tcp:\/\/10\.0\.1\.42:2375 is not a unix:\/\/ socket/);
  });
});

describe('configuration: a bridge or a Docker network', () => {
  function problems(input: unknown): string {
    try {
      parseConfig(input);
    } catch (error) {
      if (error instanceof ConfigError) return error.message;
      throw error;
    }
    throw new Error('expected the config to be rejected');
  }

  it('accepts dockerNetwork in place of bridge', async () => {
    const config = await loadConfigFile(
      (() => {
        const file = path.join(dir, 'docker.yaml');
        writeFileSync(file, 'networks:\n  - vni: 100\n    dockerNetwork: vxlan-net\n    peers: [10.0.1.42]\n');
        return file;
      })(),
    );
    expect(config.networks[0].dockerNetwork).toBe('vxlan-net');
    expect(config.networks[0].bridge).toBeUndefined();
  });

  it('wants exactly one of the two', () => {
    expect(problems({ networks: [{ vni: 1, peers: ['10.0.1.42'] }] })).toContain('networks[0].bridge: give a bridge or a dockerNetwork');
    expect(problems({ networks: [{ vni: 1, bridge: 'br1', dockerNetwork: 'n', peers: ['10.0.1.42'] }] })).toContain(
      'networks[0].bridge: give a bridge or a dockerNetwork, not both',
    );
  });

  it('checks the network name', () => {
    expect(problems({ networks: [{ vni: 1, dockerNetwork: '../etc', peers: ['10.0.1.42'] }] })).toContain('networks[0].dockerNetwork: not a Docker network name');
  });
});
