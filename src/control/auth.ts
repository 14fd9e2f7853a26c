// The bearer token of the TCP control port. A Unix socket is guarded by its
// mode (0600, root); a loopback TCP port is open to every local user, so
// there every request must carry `Authorization: Bearer TOKEN`.
//
// The daemon makes a random token at start and writes it, mode 0600, to
// tokenFilePath() in the runtime directory (removed at exit), or reads one
// from --control-token-file. The CLI reads the same file, which only root can.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import type { ControlEndpoint } from './endpoint';
import { TokenError as TokenErrorClass, readTokenFile, tokenFilePath } from './token-file';

export { TokenError } from './token-file';

export class ControlAuth {
  /** Requests refused for a missing or wrong token. */
  unauthorized = 0;
  private readonly expected: Buffer;

  private constructor(
    token: string,
    /** The file the daemon wrote, removed by close(); undefined when the token came from --control-token-file. */
    private readonly ownFile: string | undefined,
    private readonly onFirstRefusal: (request: http.IncomingMessage) => void,
  ) {
    this.expected = Buffer.from(token);
  }

  /**
   * The token for a TCP endpoint: read from tokenFile if given, else made
   * here and written to tokenFilePath(endpoint). Throws TokenError.
   */
  static open(endpoint: Extract<ControlEndpoint, { kind: 'tcp' }>, tokenFile: string | undefined, onFirstRefusal: (request: http.IncomingMessage) => void): ControlAuth {
    if (tokenFile !== undefined) return new ControlAuth(readTokenFile(tokenFile), undefined, onFirstRefusal);
    const file = tokenFilePath(endpoint);
    const token = randomBytes(32).toString('hex');
    try {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      // Written whole under another name, then renamed: a reader never sees half a token.
      const partial = `${file}.${process.pid}.partial`;
      writeFileSync(partial, `${token}\n`, { mode: 0o600 });
      chmodSync(partial, 0o600);
      renameSync(partial, file);
    } catch (error) {
      throw new TokenErrorClass(`cannot write the control token to ${file}: ${(error as Error).message} (run as root, or give --control-token-file)`);
    }
    return new ControlAuth(token, file, onFirstRefusal);
  }

  /** The file the token is in, for the log. */
  get file(): string | undefined {
    return this.ownFile;
  }

  /** True if the request carries the token; otherwise answers 401 itself and counts it. */
  admit(request: http.IncomingMessage, response: http.ServerResponse): boolean {
    // The scheme is case-insensitive (RFC 6750); the token is compared in constant time.
    const match = /^bearer +(\S+)$/i.exec(request.headers.authorization ?? '');
    const given = Buffer.from(match ? match[1] : '');
    if (given.length === this.expected.length && timingSafeEqual(given, this.expected)) return true;
    if (this.unauthorized++ === 0) this.onFirstRefusal(request);
    const body = `${JSON.stringify({ error: 'this control port needs its bearer token (Authorization: Bearer TOKEN; root can read it from the token file)' })}\n`;
    // The request body is not read: close the connection rather than drain it.
    response.writeHead(401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'www-authenticate': 'Bearer', connection: 'close' });
    response.end(body);
    return false;
  }

  close(): void {
    if (this.ownFile === undefined) return;
    try {
      unlinkSync(this.ownFile);
    } catch {
      // Already gone.
    }
  }
}
