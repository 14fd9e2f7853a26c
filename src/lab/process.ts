// Runs the tsvtep daemon inside a topology host, as a user would run it.

import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { stopProcess, type Topology } from './topology';

export const CLI_PATH = path.resolve(__dirname, '..', 'cli.js');

export interface DaemonProcess {
  child: ChildProcess;
  /** Everything the daemon wrote to stderr so far (its log). */
  log(): string;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `tsvtep ARGS` in namespace ns and waits until it listens, or fails
 * with its own error line if it exits first.
 */
export async function startDaemon(topology: Topology, ns: string, args: string[], timeoutMs = 10_000): Promise<DaemonProcess> {
  const child = topology.spawn(ns, [process.execPath, CLI_PATH, ...args]);
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout?.resume();
  const daemon: DaemonProcess = { child, log: () => stderr, stop: () => stopProcess(child, 3_000) };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`tsvtep in ${ns} not ready after ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    const onData = (): void => {
      if (stderr.includes('listening on UDP')) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`tsvtep in ${ns} exited ${code} before it was ready:\n${stderr}`));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    onData();
  });
  return daemon;
}
