// Just enough of the Docker Engine API to find a network's bridge:
// GET /networks/NAME over the engine's Unix socket. The socket is the one the
// docker CLI would use: DOCKER_HOST=unix:///path if set, else
// /var/run/docker.sock. Control path only, once per network at start-up.

import { request } from 'node:http';

export class DockerError extends Error {}

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
const TIMEOUT_MS = 10_000;
/** Bridge networks name their Linux bridge with this option (docker0 for the default network). */
const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';

/** The engine's socket path as the docker CLI finds it; a DockerError for a non-local DOCKER_HOST. */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (host === undefined || host === '') return DEFAULT_DOCKER_SOCKET;
  if (host.startsWith('unix://')) return host.slice('unix://'.length) || DEFAULT_DOCKER_SOCKET;
  throw new DockerError(
    `DOCKER_HOST=${host} is not a unix:// socket; the bridge must be on this host (unset DOCKER_HOST, or set it to unix:///var/run/docker.sock)`,
  );
}

/** The parts of the engine's network description we use. */
interface DockerNetwork {
  Name?: string;
  Id?: string;
  Driver?: string;
  Options?: Record<string, string> | null;
}

interface Response {
  status: number;
  body: string;
}

function get(socketPath: string, path: string): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', headers: { Host: 'docker', Accept: 'application/json' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new DockerError(`the Docker Engine on ${socketPath} did not answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

function connectError(socketPath: string, error: unknown): Error {
  if (error instanceof DockerError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new DockerError(`Docker is not running: nothing listens on ${socketPath} (start dockerd, or point DOCKER_HOST=unix://… at its socket)`);
    case 'EACCES':
    case 'EPERM':
      return new DockerError(`not allowed to use the Docker socket ${socketPath} (run as root)`);
    case 'ENOTSOCK':
      return new DockerError(`${socketPath} is not a socket (DOCKER_HOST=unix://… names the Docker Engine's socket)`);
    default:
      return new DockerError(`cannot reach the Docker Engine on ${socketPath}: ${(error as Error).message}`);
  }
}

/** The engine's error message from a JSON body, or the body itself. */
function engineMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON
  }
  return body.trim().split('\n')[0];
}

/** The Linux bridge a Docker bridge network uses: its bridge.name option, else br- and 12 characters of its ID. */
export function bridgeOfNetwork(network: DockerNetwork): string | undefined {
  const named = network.Options?.[BRIDGE_NAME_OPTION];
  if (named) return named;
  return network.Id ? `br-${network.Id.slice(0, 12)}` : undefined;
}

/**
 * Asks the Docker Engine for network `name` (a name or an ID) and returns the
 * Linux bridge behind it. DockerError, one line, when Docker is not running,
 * the network does not exist, or it is not a bridge network.
 */
export async function dockerNetworkBridge(name: string, socketPath: string = dockerSocketPath()): Promise<string> {
  let response: Response;
  try {
    response = await get(socketPath, `/networks/${encodeURIComponent(name)}`);
  } catch (error) {
    throw connectError(socketPath, error);
  }
  if (response.status === 404) throw new DockerError(`Docker network ${name} does not exist (docker network ls lists networks)`);
  if (response.status !== 200) {
    throw new DockerError(`the Docker Engine answered ${response.status} for network ${name}: ${engineMessage(response.body)}`);
  }
  let network: DockerNetwork;
  try {
    network = JSON.parse(response.body) as DockerNetwork;
  } catch {
    throw new DockerError(`the Docker Engine on ${socketPath} sent something other than JSON for network ${name}`);
  }
  if (network.Driver !== 'bridge') {
    throw new DockerError(
      `Docker network ${name} uses the ${network.Driver ?? 'unknown'} driver; tsvtep attaches to bridge networks only (docker network create --driver bridge …)`,
    );
  }
  const bridge = bridgeOfNetwork(network);
  if (!bridge) throw new DockerError(`the Docker Engine did not say which bridge network ${name} uses`);
  return bridge;
}
