// Start-up failures as one line a person can act on, without root: what each
// errno from the addon and each error of the edges becomes.

import { describe, expect, it } from 'vitest';
import { DockerError } from '../../src/io/docker';
import { LinkError } from '../../src/io/link';
import { OvsError } from '../../src/io/ovs';
import { attachError, bindError, sourcePortsError, StartupError, startupStep, tapError } from '../../src/startup-errors';

/** What the addon throws: err.code is the errno name. */
function errno(code: string): Error {
  return Object.assign(new Error(`${code}: from the addon`), { code, errno: 1, syscall: 'test' });
}

function message(error: unknown): string {
  expect(error).toBeInstanceOf(StartupError);
  const text = (error as Error).message;
  expect(text).not.toContain('\n');
  return text;
}

describe('start-up errors', () => {
  it('says what to do when the VXLAN port cannot be bound', () => {
    expect(message(bindError(errno('EADDRINUSE'), '::', 4789))).toBe(
      'UDP port 4789 is in use on :: (another tsvtep or a kernel vxlan device with dstport 4789? pick another with --port)',
    );
    expect(message(bindError(errno('EADDRNOTAVAIL'), '10.9.9.9', 4789))).toBe('address 10.9.9.9 is not on this host (ip addr lists local addresses)');
    expect(message(bindError(errno('EACCES'), '::', 80))).toBe('not allowed to bind UDP port 80 (run as root)');
  });

  it('says what to do when a TAP cannot be created', () => {
    expect(message(tapError(errno('EPERM'), 'tsv100'))).toBe('not allowed to create TAP tsv100 (run as root or with CAP_NET_ADMIN)');
    expect(message(tapError(errno('EACCES'), 'tsv100'))).toBe('not allowed to create TAP tsv100 (run as root or with CAP_NET_ADMIN)');
    expect(message(tapError(errno('ENOENT'), 'tsv100'))).toContain('/dev/net/tun is missing');
    expect(message(tapError(errno('ENODEV'), 'tsv100'))).toContain('/dev/net/tun is missing');
    expect(message(tapError(errno('EBUSY'), 'tsv100'))).toBe('TAP tsv100 is in use by another process (pick another name with --tap)');
    expect(message(tapError(errno('EINVAL'), 'eth0'))).toBe('eth0 exists and is not a TAP (pick another name with --tap)');
    expect(message(tapError(errno('EMFILE'), 'tsv100'))).toBe('cannot create TAP tsv100: EMFILE: from the addon');
  });

  it('names the way out for the send sockets and the bridge attachment', () => {
    expect(message(sourcePortsError(errno('EMFILE'), 4789))).toBe('cannot open the sockets to send from: EMFILE: from the addon (--source-ports 1 sends from port 4789)');
    expect(message(attachError(new Error('RTNETLINK answers: Operation not permitted'), 'tsv100', 'br0'))).toBe(
      'cannot attach tsv100 to bridge br0: RTNETLINK answers: Operation not permitted',
    );
  });

  it('passes on what it cannot explain: an errno it has no words for, or a bug', () => {
    const unknownBind = errno('ENOBUFS');
    expect(bindError(unknownBind, '::', 4789)).toBe(unknownBind);
    const bug = new TypeError('x is undefined');
    expect(bindError(bug, '::', 4789)).toBe(bug);
    expect(tapError(bug, 'tsv100')).toBe(bug);
  });

  it('turns the errors of links, Open vSwitch and Docker into start-up errors, keeping their message', async () => {
    for (const error of [new LinkError('bridge br-x does not exist (ip link show type bridge lists bridges)'), new OvsError('ovs down'), new DockerError('no network vxlan-net')]) {
      await expect(startupStep(() => Promise.reject(error))).rejects.toEqual(new StartupError(error.message));
    }
    const bug = new TypeError('x is undefined');
    await expect(startupStep(() => Promise.reject(bug))).rejects.toBe(bug);
    expect(await startupStep(async () => 'br0')).toBe('br0');
  });
});
