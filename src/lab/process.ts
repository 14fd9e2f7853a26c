// Runs the tsvtep daemon inside a topology host, as a user would run it.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { stopProcess, type Topology } from './topology';

// This file runs built, from dist/src/lab, and as TypeScript from src/lab (the
// tests); either way the daemon is the built one, dist/src/cli.js.
const builtHere = path.basename(path.resolve(__dirname, '..', '..')) === 'dist';
export const CLI_PATH = path.resolve(__dirname, builtHere ? '..' : '../../dist/src', 'cli.js');

export interface DaemonProcess {
  child: ChildProcess;
  /** Everything the daemon wrote to stderr so far (its log). */
  log(): string;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `tsvtep ARGS` in namespace ns and waits until it listens, or fails
 * with its own error line if it exits first. env adds environment variables
 * (DOCKER_HOST, OVS_RUNDIR, ...) for this daemon only.
 */
export async function startDaemon(
  topology: Topology,
  ns: string,
  args: string[],
  timeoutMs = 10_000,
  env: Record<string, string> = {},
): Promise<DaemonProcess> {
  // env(1) execs the daemon, so the PID is still the daemon's own.
  const withEnv = Object.keys(env).length > 0 ? ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)] : [];
  const child = topology.spawn(ns, [...withEnv, process.execPath, CLI_PATH, ...args]);
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout?.resume();
  await untilListening(child, ns, () => stderr, timeoutMs);
  return { child, log: () => stderr, stop: () => stopProcess(child, 3_000) };
}

export interface DetachedDaemon {
  pid: number;
  /** When it started (see processStartTime): with the PID, tells it from a later process that reuses the PID. */
  startTime: number;
}

/**
 * Starts `tsvtep ARGS` in namespace ns as a process of its own (own session,
 * output appended to logPath) that outlives the caller, and waits until it
 * listens. If it does not start, it is stopped and the error carries its log.
 * Stop it later with stopPid.
 */
export async function startDetachedDaemon(ns: string, args: string[], logPath: string, timeoutMs = 10_000): Promise<DetachedDaemon> {
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI_PATH, ...args], { detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid as number));
    child.once('error', reject);
  });
  const startTime = processStartTime(pid) ?? 0;
  try {
    await untilListening(child, ns, () => readFileSync(logPath, 'utf8'), timeoutMs);
  } catch (error) {
    await stopProcess(child, 3_000);
    throw error;
  }
  child.unref();
  return { pid, startTime };
}

/** Resolves once the daemon's log says it listens; rejects with the log if it exits or times out first. */
function untilListening(child: ChildProcess, ns: string, log: () => string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const finish = (error?: Error): void => {
      clearInterval(poll);
      clearTimeout(timer);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    const check = (): void => {
      if (log().includes('listening on UDP')) finish();
    };
    const onExit = (code: number | null): void => finish(new Error(`tsvtep in ${ns} exited ${code} before it was ready:\n${log()}`));
    const poll = setInterval(check, 20);
    const timer = setTimeout(() => finish(new Error(`tsvtep in ${ns} not ready after ${timeoutMs} ms:\n${log()}`)), timeoutMs);
    child.once('exit', onExit);
    check();
  });
}

/** State letter and start time (clock ticks after boot) of process pid, from /proc/PID/stat; undefined if there is none. */
function procStat(pid: number): { state: string; startTime: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces; field 3 is the state, 22 the start time.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], startTime: Number(fields[19]) };
}

/** Start time of a live process (see procStat); undefined if there is no such process or it has exited (a zombie). */
export function processStartTime(pid: number): number | undefined {
  const stat = procStat(pid);
  return stat && stat.state !== 'Z' && stat.state !== 'X' ? stat.startTime : undefined;
}

/** Whether pid is still the live process that started at startTime. */
export function isRunning(pid: number, startTime: number): boolean {
  return processStartTime(pid) === startTime;
}

/**
 * Stops a process that is not our child, by PID: SIGTERM, then SIGKILL after
 * graceMs; resolves once it is gone from the process table (an exited
 * process stays there, as a zombie, until its parent reaps it). Does nothing
 * to a process that merely reuses the PID.
 */
export async function stopPid(pid: number, startTime: number, graceMs: number): Promise<'gone' | 'stopped' | 'killed'> {
  const exists = (): boolean => procStat(pid)?.startTime === startTime;
  if (!exists()) return 'gone';
  const wasRunning = isRunning(pid, startTime);
  if (wasRunning) signal(pid, 'SIGTERM');
  const killAt = Date.now() + graceMs;
  let killed = false;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (!exists()) return killed ? 'killed' : wasRunning ? 'stopped' : 'gone';
    if (!killed && Date.now() >= killAt && isRunning(pid, startTime)) {
      signal(pid, 'SIGKILL');
      killed = true;
    }
    if (Date.now() >= killAt + 5_000) {
      throw new Error(`process ${pid} is still there ${graceMs / 1000 + 5} s after SIGTERM${killed ? ' and 5 s after SIGKILL' : ' (exited, not reaped by its parent)'}`);
    }
  }
}
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error; // ESRCH: it exited meanwhile
  }
}
