// Issue 9, Docker networks by name: seeds 000 and 001 as written, with a real
// Docker Engine per host (Debian's docker.io, started inside the host's
// namespace), `docker network create --subnet 172.18.0.0/16 vxlan-net`,
// `docker run --net vxlan-net --ip 172.18.0.1x`, and tsvtep given the network's
// name instead of its br-<id> bridge: on host 1 by --docker-network, on host 2
// by `dockerNetwork:` in a config file. Then the errors a person can run into:
// Docker not running, no such network, a network that is not a bridge.

import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_PATH, startDaemon, type DaemonProcess } from '../../src/lab/process';
import { containerIp } from '../../src/lab/topology';
import { doctorLine, runDoctor } from '../helpers/doctor';
import { alive, BUSYBOX_IMAGE, IMAGE_MARKER, useDockerLab, type DockerEngine } from '../helpers/docker';

const VNI = 100;
const NETWORK = 'vxlan-net';

interface DockerContainer {
  engine: DockerEngine;
  name: string;
  ip: string;
}

/** `docker exec NAME ping`: counts of one run (never throws on loss). */
async function dockerPing(from: DockerContainer, address: string, count: number): Promise<{ sent: number; received: number; output: string }> {
  const result = await from.engine.exec(from.name, ['ping', '-c', String(count), '-W', '2', address], (count + 10) * 1000);
  const output = result.stdout + result.stderr;
  const summary = /(\d+) packets transmitted, (\d+) packets received/.exec(output);
  return { sent: summary ? Number(summary[1]) : 0, received: summary ? Number(summary[2]) : 0, output };
}

/** The first answer may take ARP and learning; after it, every ping of a few must be answered. */
async function expectDockerPing(from: DockerContainer, to: DockerContainer): Promise<void> {
  const end = Date.now() + 15_000;
  let answered = false;
  while (!answered && Date.now() < end) answered = (await dockerPing(from, to.ip, 1)).received === 1;
  expect(answered, `no answer from ${to.ip} in ${from.name}`).toBe(true);
  const result = await dockerPing(from, to.ip, 5);
  expect(result.sent, result.output).toBe(5);
  expect(result.received, result.output).toBe(5);
}

/**
 * A checksummed TCP transfer: `server` makes a file of random bytes and serves
 * it with busybox httpd; `client` fetches it with busybox wget and hashes what
 * arrived. Both sha256 sums must match.
 */
async function expectTransfer(server: DockerContainer, client: DockerContainer, bytes: number, port: number): Promise<void> {
  const made = await server.engine.execOk(server.name, [
    'sh', '-c', `head -c ${bytes} /dev/urandom > /www/blob && sha256sum /www/blob && httpd -p ${port} -h /www`,
  ]);
  const sent = made.trim().split(/\s+/)[0];
  expect(sent).toMatch(/^[0-9a-f]{64}$/);
  const fetched = await client.engine.execOk(
    client.name,
    ['sh', '-c', `wget -q -O - http://${server.ip}:${port}/blob | tee /tmp/got | sha256sum; wc -c < /tmp/got`],
    120_000,
  );
  const [sumLine, sizeLine] = fetched.trim().split('\n');
  expect(Number(sizeLine?.trim())).toBe(bytes);
  expect(sumLine.split(/\s+/)[0]).toBe(sent);
}

describe('tsvtep --docker-network, two Docker hosts (seeds 000 and 001)', () => {
  const daemons: DaemonProcess[] = [];
  const lab = useDockerLab(async ({ engines }) => {
    for (const [i, engine] of engines.entries()) {
      await engine.dockerOk(['network', 'create', '--subnet', '172.18.0.0/16', NETWORK]);
      await engine.dockerOk(['run', '-d', '--net', NETWORK, '--ip', containerIp(i), '--name', `c${i + 1}`, BUSYBOX_IMAGE, 'sleep', '3000']);
    }
  });
  const container = (i: number): DockerContainer => ({ engine: lab().engines[i], name: `c${i + 1}`, ip: containerIp(i) });
  const host = (i: number) => lab().topology.hosts[i];

  async function bridgeOfNetwork(engine: DockerEngine): Promise<string> {
    const id = (await engine.dockerOk(['network', 'inspect', '-f', '{{.Id}}', NETWORK])).trim();
    return `br-${id.slice(0, 12)}`;
  }

  it('commands in a container run in its image (busybox), not in the machine\'s root filesystem', async () => {
    for (const i of [0, 1]) {
      const c = container(i);
      expect((await c.engine.execOk(c.name, ['cat', `/${IMAGE_MARKER}`])).trim()).toBe(BUSYBOX_IMAGE);
      expect((await c.engine.execOk(c.name, ['readlink', '/bin/sh'])).trim()).toBe('busybox');
    }
  });

  it('without a tunnel the containers do not reach each other (as in the seeds)', async () => {
    const result = await dockerPing(container(0), container(1).ip, 2);
    expect(result.received, result.output).toBe(0);
  });

  it('attaches to the bridge Docker made for the network, by flag and by config file', async () => {
    const t = lab().topology;
    daemons.push(
      await startDaemon(t, host(0).ns, ['--docker-network', NETWORK, '--vni', String(VNI), '--peer', host(1).underlayIp], 15_000, lab().engines[0].env),
    );
    const file = path.join(lab().dir, 'h2.yaml');
    writeFileSync(file, `networks:\n  - vni: ${VNI}\n    dockerNetwork: ${NETWORK}\n    peers: [${host(0).underlayIp}]\n`);
    daemons.push(await startDaemon(t, host(1).ns, ['--config', file], 15_000, lab().engines[1].env));

    for (const i of [0, 1]) {
      const bridge = await bridgeOfNetwork(lab().engines[i]);
      const tap = JSON.parse(await t.execOk(host(i).ns, ['ip', '-j', 'link', 'show', 'dev', `tsv${VNI}`])) as { master?: string }[];
      expect(tap[0]?.master).toBe(bridge);
      expect(daemons[i].log()).toContain(`on bridge ${bridge} (Docker network ${NETWORK})`);
    }
  });

  it('containers ping each other both ways', async () => {
    await expectDockerPing(container(0), container(1));
    await expectDockerPing(container(1), container(0));
  });

  it('8 MiB over TCP arrive intact, both ways (sha256 on both ends)', async () => {
    await expectTransfer(container(1), container(0), 8 * 1024 * 1024, 8080);
    await expectTransfer(container(0), container(1), 8 * 1024 * 1024, 8081);
  });

  it('tsvtep doctor --docker-network finds the engine, the network and its bridge; FAIL where no engine answers', async () => {
    const t = lab().topology;
    const bridge = await bridgeOfNetwork(lab().engines[0]);
    // Another port: the tsvtep of the tests above holds 4789.
    const ok = await runDoctor(t, host(0).ns, ['--docker-network', NETWORK, '--port', '4791'], lab().engines[0].env);
    expect(ok.code, ok.stdout).toBe(0);
    expect(doctorLine(ok, 'Docker Engine')).toMatch(/^pass +Docker Engine +answers on \S+docker\.sock$/);
    expect(doctorLine(ok, 'Docker Engine')).toContain(lab().engines[0].socket);
    expect(doctorLine(ok, `Docker network ${NETWORK}`)).toMatch(new RegExp(`^pass .* bridge ${bridge}$`));
    expect(doctorLine(ok, `bridge ${bridge}`)).toMatch(/^pass .* a Linux bridge$/);

    const nowhere = path.join(lab().dir, 'no-engine.sock');
    const down = await runDoctor(t, host(0).ns, ['--docker-network', NETWORK, '--port', '4791'], { DOCKER_HOST: `unix://${nowhere}` });
    expect(down.code).toBe(1);
    expect(doctorLine(down, 'Docker Engine')).toMatch(new RegExp(`^FAIL .*nothing answers on ${nowhere} \\(ENOENT\\): start it`));
  });

  describe('errors are one line, exit 1, and leave no TAP', () => {
    const vni = 101;

    /** Runs tsvtep on host 1 to completion with the given environment (killed after 20 s, which fails the test). */
    async function run(env: Record<string, string>, args: string[]): Promise<{ code: number | null; stderr: string }> {
      const t = lab().topology;
      const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
      const control = path.join(lab().dir, 'error-case.sock');
      const child = t.spawn(host(0).ns, ['env', ...envArgs, process.execPath, CLI_PATH, '--vni', String(vni), '--peer', host(1).underlayIp, '--port', '4790', '--control', control, ...args]);
      let stderr = '';
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (d: string) => (stderr += d));
      child.stdout?.resume();
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      clearTimeout(timer);
      return { code, stderr };
    }

    async function expectOneLine(result: { code: number | null; stderr: string }, code: number, message: RegExp): Promise<void> {
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^tsvtep: /);
      expect(lines[0]).toMatch(message);
      expect(result.code, result.stderr).toBe(code);
      const taps = await lab().topology.exec(host(0).ns, ['ip', 'link', 'show', 'dev', `tsv${vni}`]);
      expect(taps.code, `tsv${vni} was left behind`).not.toBe(0);
    }

    it('Docker not running: nothing listens on the socket', async () => {
      const socket = path.join(lab().dir, 'no-engine.sock');
      await expectOneLine(await run({ DOCKER_HOST: `unix://${socket}` }, ['--docker-network', NETWORK]), 1, /Docker is not running: nothing listens on .*no-engine\.sock/);
    });

    it('no such network', async () => {
      await expectOneLine(await run(lab().engines[0].env, ['--docker-network', 'no-such-net']), 1, /Docker network no-such-net does not exist \(docker network ls/);
    });

    it('a network whose driver is not bridge (macvlan, and the predefined none network)', async () => {
      const engine = lab().engines[0];
      await engine.dockerOk(['network', 'create', '--driver', 'macvlan', '--subnet', '10.99.0.0/24', '-o', 'parent=eth0', 'mv-net']);
      await expectOneLine(await run(engine.env, ['--docker-network', 'mv-net']), 1, /Docker network mv-net uses the macvlan driver; tsvtep attaches to bridge networks only/);
      await expectOneLine(await run(engine.env, ['--docker-network', 'none']), 1, /Docker network none uses the null driver/);
    });

    it('DOCKER_HOST that is not a local socket', async () => {
      await expectOneLine(await run({ DOCKER_HOST: 'tcp://10.0.1.42:2375' }, ['--docker-network', NETWORK]), 1, /DOCKER_HOST=tcp:\/\/10\.0\.1\.42:2375 is not a unix:\/\/ socket/);
    });

    it('--bridge and --docker-network together are a usage error (exit 2)', async () => {
      await expectOneLine(await run(lab().engines[0].env, ['--docker-network', NETWORK, '--bridge', 'br0']), 2, /give --bridge or --docker-network, not both/);
    });
  });

  it('stopping an engine ends every process it started and removes its directory', async () => {
    const engine = lab().engines[1];
    const processes = engine.processes();
    // dockerd, containerd, a shim and the container's processes (sleep, httpd).
    expect(processes.length, JSON.stringify(processes)).toBeGreaterThanOrEqual(5);
    await engine.stop();
    expect(processes.filter(alive)).toEqual([]);
    expect(existsSync(engine.dir)).toBe(false);
  });
});
