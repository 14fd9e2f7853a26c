// The CLI side of the control interface.

import http from 'node:http';
import { describeEndpoint, type ControlEndpoint } from './endpoint';

export class ControlClientError extends Error {
  constructor(
    message: string,
    /** The daemon's HTTP status, if it answered. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Sends one request; resolves with the parsed JSON body, throws with the daemon's error text. */
export function controlRequest(endpoint: ControlEndpoint, method: string, path: string, body?: unknown, token?: string): Promise<unknown> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const authorization: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        method,
        path,
        ...(endpoint.kind === 'unix' ? { socketPath: endpoint.path } : { host: endpoint.host, port: endpoint.port }),
        headers: { ...authorization, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
        timeout: 10_000,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            return reject(new ControlClientError(`the daemon answered something that is not JSON (HTTP ${response.statusCode})`));
          }
          if ((response.statusCode ?? 500) >= 400) {
            return reject(new ControlClientError((parsed as { error?: string }).error ?? `HTTP ${response.statusCode}`, response.statusCode));
          }
          resolve(parsed);
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', (error: NodeJS.ErrnoException) => {
      const where = describeEndpoint(endpoint);
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
        reject(new ControlClientError(`no tsvtep is running here (nothing answers on ${where}; use --control to point elsewhere)`));
      } else if (error.code === 'EACCES') {
        reject(new ControlClientError(`not allowed to use ${where} (run as root)`));
      } else {
        reject(new ControlClientError(`cannot reach the daemon on ${where}: ${error.message}`));
      }
    });
    if (payload) request.write(payload);
    request.end();
  });
}
