// What one client may cost the control server: how long it may take to send
// its headers and its request, how long an idle connection stays, and how
// big a body may be. A slow or stuck client is cut off; it never holds the
// daemon, and the data plane never waits for it.

import type http from 'node:http';

/** Largest request body read; anything longer is refused (413) without being kept. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Options for http.createServer of the control interface. */
export const CONTROL_SERVER_OPTIONS: http.ServerOptions = {
  /** Headers complete within 5 s (Node's default is 60 s: slowloris room). */
  headersTimeout: 5_000,
  /** The whole request, body included, within 10 s. */
  requestTimeout: 10_000,
  /** An idle kept-alive connection is closed after 5 s. */
  keepAliveTimeout: 5_000,
  /** How often the timeouts above are checked (Node's default: every 30 s). */
  connectionsCheckingInterval: 1_000,
  /** 16 KiB of headers at most (Node's default), stated so it stays so. */
  maxHeaderSize: 16 * 1024,
};

/**
 * Sets what createServer's options cannot: an idle socket (nothing sent or
 * received) is closed after 10 s, and connections beyond 4096 at once are
 * closed at accept, so file descriptors stay bounded.
 */
export function limitServer(server: http.Server): void {
  server.setTimeout(10_000);
  server.maxHeadersCount = 64;
  server.maxConnections = 4_096;
}

/** A request the server refuses before it reaches a handler. */
export class RequestError extends Error {
  constructor(
    readonly status: 400 | 413,
    message: string,
    /** The rest of the body was not read: close the connection after the answer. */
    readonly closeConnection = false,
  ) {
    super(message);
  }
}

/** Reads and parses a JSON body of at most MAX_BODY_BYTES; throws RequestError. */
export async function readJsonBody(request: http.IncomingMessage): Promise<unknown> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new RequestError(413, `request body too large (at most ${MAX_BODY_BYTES} bytes)`, true);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      // Keep nothing more; the answer goes out and the connection is closed.
      request.pause();
      throw new RequestError(413, `request body too large (at most ${MAX_BODY_BYTES} bytes)`, true);
    }
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new RequestError(400, 'request body is not JSON');
  }
}
