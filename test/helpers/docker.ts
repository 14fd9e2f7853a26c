// Docker Engines for the tests, one per "host" namespace, as the seeds run
// Docker (000, 001): dockerd started inside the namespace with every directory
// under a temporary directory of this run, a busybox image made with
// `docker import` (no image registry is reachable), then `docker network
// create` and `docker run` as written in the seeds.
//
// dockerd is our child and is stopped by its PID. The processes it starts are
// found by PID too: its descendants (containerd), and the processes in the
// sessions they lead, which is where containerd's shims and the containers'
// processes end up after the shims detach from their parent. None of them
// outlives stop(), and neither do the engine's mounts and directories.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { runCommand, Topology, type RunResult, type TopologyOptions } from '../../src/lab/topology';

const execFileP = promisify(execFile);

/** The CLI that comes with Debian's docker.io (a newer one in /usr/local/bin may shadow it on PATH). */
const DOCKER_CLI = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p)) ?? '/bin/busybox';
export const BUSYBOX_IMAGE = 'tsvtep-busybox:test';
/** A file only the test image has: a command that cannot read it does not run in the image. */
export const IMAGE_MARKER = 'etc/tsvtep-test-image';

/** Machine-wide directories dockerd and containerd create whatever their roots are. */
const GLOBAL_DIRS = ['/run/docker/plugins', '/run/docker', '/run/containerd/s', '/run/containerd'];

export interface DockerEngine {
  ns: string;
  dir: string;
  socket: string;
  pid: number;
  /** DOCKER_HOST for this engine, and a private DOCKER_CONFIG for the CLI. */
  env: Record<string, string>;
  /** The docker CLI against this engine, bounded by timeoutMs. */
  docker(args: string[], timeoutMs?: number): Promise<RunResult>;
  /** Like docker(), but throws with the CLI's stderr if it fails; returns stdout. */
  dockerOk(args: string[], timeoutMs?: number): Promise<string>;
  /**
   * Runs a command in a running container, in its namespaces and its root
   * directory, like `docker exec` (see execInContainer for why not that).
   */
  exec(container: string, args: string[], timeoutMs?: number): Promise<RunResult>;
  /** Like exec(), but throws with the command's stderr if it fails; returns stdout. */
  execOk(container: string, args: string[], timeoutMs?: number): Promise<string>;
  /** The engine's own log. */
  log(): string;
  /** dockerd and every process it started (containerd, shims, containers' processes), by PID and start time. */
  processes(): Proc[];
  /** Stops the engine and everything it started, unmounts and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Starts dockerd in namespace ns with everything under dir (created here),
 * and waits until its API answers.
 */
export async function startDockerEngine(ns: string, dir: string, timeoutMs = 60_000): Promise<DockerEngine> {
  mkdirSync(path.join(dir, 'cli'), { recursive: true });
  const socket = path.join(dir, 'docker.sock');
  const logPath = path.join(dir, 'dockerd.log');
  // dockerd writes its identity key to /etc/docker/key.json unless told otherwise
  // (a config-file setting only, in Debian's 20.10).
  writeFileSync(path.join(dir, 'daemon.json'), `${JSON.stringify({ 'deprecated-key-path': path.join(dir, 'key.json') })}\n`);
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    // nsenter --net, not `ip netns exec`: the latter remounts /sys, which
    // hides the cgroup hierarchy dockerd and runc need. nsenter execs dockerd,
    // so the child's PID is dockerd's.
    child = spawn(
      'nsenter',
      [
        `--net=/var/run/netns/${ns}`,
        'dockerd',
        '--config-file', path.join(dir, 'daemon.json'),
        '--data-root', path.join(dir, 'data'),
        '--exec-root', path.join(dir, 'exec'),
        '--pidfile', path.join(dir, 'docker.pid'),
        '-H', `unix://${socket}`,
        '--iptables=false',
        '--ip6tables=false',
        '--bridge=none',
        '--storage-driver=vfs',
      ],
      { stdio: ['ignore', fd, fd] },
    );
  } finally {
    closeSync(fd);
  }
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid as number));
    child.once('error', reject);
  });
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(dir, 'cli') };
  const log = (): string => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');
  const docker = (args: string[], limitMs = 60_000): Promise<RunResult> => runWithEnv(DOCKER_CLI, args, env, limitMs);
  let stopped: Promise<void> | undefined;
  let startedProcesses: Proc[] = [];
  const engine: DockerEngine = {
    ns,
    dir,
    socket,
    pid,
    env,
    docker,
    dockerOk: async (args, limitMs) => {
      const result = await docker(args, limitMs);
      if (result.code !== 0) throw new Error(`docker ${args.join(' ')} (engine in ${ns}) exited ${result.code}: ${result.stderr.trim()}`);
      return result.stdout;
    },
    exec: (container, args, limitMs = 60_000) => execInContainer(docker, container, args, limitMs),
    execOk: async (container, args, limitMs = 60_000) => {
      const result = await execInContainer(docker, container, args, limitMs);
      if (result.code !== 0) throw new Error(`${args.join(' ')} in container ${container} (engine in ${ns}) exited ${result.code}: ${result.stderr.trim()}`);
      return result.stdout;
    },
    log,
    processes: () => (child.exitCode === null && child.signalCode === null ? processTree(pid) : []),
    stop: () =>
      (stopped ??= (async () => {
        // Containers first, at once: dockerd would give each one 10 s to heed
        // SIGTERM, which busybox sleep as PID 1 never does.
        if (child.exitCode === null && child.signalCode === null) {
          const ids = (await docker(['ps', '-aq'], 15_000)).stdout.split('\n').filter((id) => id !== '');
          if (ids.length > 0) await docker(['rm', '-f', ...ids], 30_000);
        }
        await stopEngine(child, dir, startedProcesses);
      })()),
  };
  try {
    await waitForApi(child, socket, timeoutMs, log);
    // containerd by now: should dockerd die first, its processes are still known.
    startedProcesses = processTree(pid);
  } catch (error) {
    await engine.stop();
    throw error;
  }
  return engine;
}

/**
 * `docker exec` joins the container's mount namespace, which puts the command
 * at that namespace's root. On most machines that is the container's root
 * filesystem; but where the tests themselves run in a chroot (a fresh-machine
 * check, a build chroot), runc's pivot_root replaced only the chroot's mount,
 * and `docker exec` lands in the machine's real root filesystem instead of
 * the image's (its dash, its ping, no /www). nsenter --root takes the root
 * directory of the container's first process, which is the image's
 * everywhere.
 */
async function execInContainer(docker: DockerEngine['docker'], container: string, args: string[], timeoutMs: number): Promise<RunResult> {
  const inspected = await docker(['inspect', '-f', '{{.State.Pid}}', container], 15_000);
  const pid = Number(inspected.stdout.trim());
  if (inspected.code !== 0 || !Number.isInteger(pid) || pid <= 0) {
    return { stdout: '', stderr: `container ${container} is not running: ${inspected.stderr.trim()}`, code: 1 };
  }
  return runWithEnv('nsenter', ['-t', String(pid), '-m', '-u', '-i', '-n', '-p', '-r', '-w', '--', ...args], {}, timeoutMs);
}

/** Polls GET /_ping until the engine answers OK; rejects with its log if it exits or the deadline passes. */
async function waitForApi(child: ChildProcess, socket: string, timeoutMs: number, log: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`dockerd exited (${child.exitCode ?? child.signalCode}) before its API answered:\n${tail(log())}`);
    }
    if (await ping(socket)) return;
    if (Date.now() > end) throw new Error(`dockerd's API on ${socket} did not answer within ${timeoutMs / 1000} s:\n${tail(log())}`);
    await sleep(200);
  }
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', headers: { Host: 'docker' } }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.setTimeout(2_000, () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * SIGTERM to dockerd (it stops its containers and containerd), then waits,
 * bounded, for every process of the engine to be gone; SIGKILL for any left.
 * Then the engine's mounts are undone and its directory removed.
 */
async function stopEngine(child: ChildProcess, dir: string, known: Proc[]): Promise<void> {
  const problems: string[] = [];
  if (child.pid !== undefined) {
    // The engine's processes, by PID and start time, as they were once it
    // answered and as they are now, before anything exits and reparents.
    const byPid = new Map([...known, ...processTree(child.pid)].map((p) => [p.pid, p]));
    byPid.delete(child.pid);
    const engineProcesses = [...byPid.values()];
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    child.kill('SIGTERM');
    if (!(await within(exited, 20_000))) {
      problems.push(`dockerd ${child.pid} ignored SIGTERM for 20 s; killed`);
      child.kill('SIGKILL');
      await within(exited, 5_000);
    }
    // Shims and containers started after the snapshot belong to the same
    // sessions (led by containerd, alive or not).
    const all = [...engineProcesses, ...sessionMembers(engineProcesses.map((p) => p.pid))].filter(alive);
    const leftover = await waitGone(all, 10_000);
    for (const p of leftover) signal(p.pid, 'SIGKILL');
    const stubborn = await waitGone(leftover, 5_000);
    if (leftover.length > 0) problems.push(`killed ${leftover.length} engine process(es) still there 10 s after dockerd: ${leftover.map((p) => p.pid).join(', ')}`);
    if (stubborn.length > 0) problems.push(`processes ${stubborn.map((p) => p.pid).join(', ')} survived SIGKILL`);
  }
  await unmountUnder(dir);
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch (error) {
    problems.push(`cannot remove ${dir}: ${(error as Error).message}`);
  }
  if (problems.length > 0) throw new Error(`stopping the Docker Engine in ${dir}: ${problems.join('; ')}`);
}

export interface Proc {
  pid: number;
  startTime: number;
}

interface ProcStat extends Proc {
  state: string;
  ppid: number;
  session: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2, the command, is in parentheses and may contain anything.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, state: f[0], ppid: Number(f[1]), session: Number(f[3]), startTime: Number(f[19]) };
}

function allProcesses(): ProcStat[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readStat(Number(name)))
    .filter((p): p is ProcStat => p !== undefined);
}

/**
 * root and everything that descends from it, by parent PID or by session
 * (a daemonized process leaves its parent but keeps the session it got from it).
 */
function processTree(root: number): Proc[] {
  const procs = allProcesses();
  const found = new Map<number, ProcStat>();
  const rootStat = procs.find((p) => p.pid === root);
  if (!rootStat) return [];
  found.set(root, rootStat);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) {
      if (found.has(p.pid)) continue;
      if (found.has(p.ppid) || (p.session !== 0 && found.has(p.session) && p.session !== rootStat.session)) {
        found.set(p.pid, p);
        grew = true;
      }
    }
  }
  return [...found.values()].map(({ pid, startTime }) => ({ pid, startTime }));
}

/** Processes whose session is led by one of leaders, and their descendants. */
function sessionMembers(leaders: number[]): Proc[] {
  const set = new Set(leaders);
  const out = new Map<number, Proc>();
  for (const p of allProcesses()) {
    if (set.has(p.session) && !set.has(p.pid)) for (const q of processTree(p.pid)) out.set(q.pid, q);
  }
  return [...out.values()];
}

/** Whether p is still that process, and alive (a zombie has exited). */
export function alive(p: Proc): boolean {
  const stat = readStat(p.pid);
  return stat !== undefined && stat.startTime === p.startTime && stat.state !== 'Z' && stat.state !== 'X';
}

/** Waits until none of procs is alive; returns those still alive at the deadline. */
async function waitGone(procs: Proc[], deadlineMs: number): Promise<Proc[]> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const left = procs.filter(alive);
    if (left.length === 0 || Date.now() > end) return left;
    await sleep(100);
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone meanwhile
  }
}

/** Lazily unmounts whatever is mounted at or below dir (deepest first). */
async function unmountUnder(dir: string): Promise<void> {
  const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((mp): mp is string => mp !== undefined && (mp === dir || mp.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const mp of mountPoints) await runCommand('umount', ['-l', mp], 10_000);
}

async function runWithEnv(file: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileP(file, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const err = error as { stdout?: string; stderr?: string; code?: number | string; killed?: boolean };
    return {
      stdout: err.stdout ?? '',
      stderr: `${err.stderr ?? ''}${err.killed ? `\n(timed out after ${timeoutMs} ms)` : ''}`,
      code: typeof err.code === 'number' ? err.code : 1,
    };
  }
}

/**
 * A tarball of a root filesystem holding /bin/busybox and a link per applet
 * (sh, ping, wget, httpd, sha256sum, ...), for `docker import`.
 */
export async function busyboxRootfsTarball(workDir: string): Promise<string> {
  const root = path.join(workDir, 'rootfs');
  for (const d of ['bin', 'etc', 'tmp', 'www', 'proc', 'sys', 'dev']) mkdirSync(path.join(root, d), { recursive: true });
  copyFileSync(BUSYBOX, path.join(root, 'bin', 'busybox'));
  writeFileSync(path.join(root, IMAGE_MARKER), `${BUSYBOX_IMAGE}\n`);
  const { stdout } = await execFileP(BUSYBOX, ['--list']);
  for (const applet of stdout.split('\n').map((s) => s.trim())) {
    if (applet === '' || applet === 'busybox' || applet.includes('/')) continue;
    symlinkSync('busybox', path.join(root, 'bin', applet));
  }
  const tarball = path.join(workDir, 'busybox.tar');
  await execFileP('tar', ['-C', root, '-cf', tarball, '.']);
  rmSync(root, { recursive: true, force: true });
  return tarball;
}

/**
 * Which of the machine-wide directories dockerd and containerd create exist
 * now; removeGlobalDirs later removes those that did not, if they are empty.
 */
export function existingGlobalDirs(): Set<string> {
  return new Set(GLOBAL_DIRS.filter((d) => existsSync(d)));
}

export function removeGlobalDirs(existedBefore: Set<string>): void {
  for (const d of GLOBAL_DIRS) {
    if (existedBefore.has(d)) continue;
    try {
      rmdirSync(d); // only if empty: another engine may be using it
    } catch {
      // not empty, or not there
    }
  }
}

function within(promise: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface DockerLab {
  topology: Topology;
  /** One engine per host, in host order. */
  engines: DockerEngine[];
  /** Temporary directory of this lab (engines, image tarball, config files). */
  dir: string;
}

/**
 * Two hosts (namespaces on one underlay segment, no bridges of our own), a
 * Docker Engine in each with the busybox image imported, then setup. Built
 * before the enclosing describe block's tests and torn down after them, also
 * when a step fails: engines first (by PID), then namespaces, then files.
 */
export function useDockerLab(setup?: (lab: DockerLab) => Promise<void>, options: TopologyOptions = {}): () => DockerLab {
  let lab: DockerLab | undefined;
  let globalDirsBefore = new Set<string>();
  let dir: string | undefined;
  let topology: Topology | undefined;
  const engines: DockerEngine[] = [];
  beforeAll(async () => {
    globalDirsBefore = existingGlobalDirs();
    topology = await Topology.create({ hosts: 2, vnis: [], ipv6: false, ...options });
    dir = mkdtempSync(path.join(tmpdir(), `tsvtep-docker-${topology.prefix}-`));
    const tarball = await busyboxRootfsTarball(dir);
    for (const host of topology.hosts) {
      const engine = await startDockerEngine(host.ns, path.join(dir, `h${host.index + 1}`));
      engines.push(engine);
      await engine.dockerOk(['import', tarball, BUSYBOX_IMAGE]);
    }
    lab = { topology, engines, dir };
    await setup?.(lab);
  }, 180_000);
  afterAll(async () => {
    const problems: string[] = [];
    for (const engine of engines.splice(0)) {
      await engine.stop().catch((error: Error) => problems.push(error.message));
    }
    await topology?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    removeGlobalDirs(globalDirsBefore);
    if (problems.length > 0) throw new Error(problems.join('\n'));
  }, 120_000);
  return () => {
    if (!lab) throw new Error('the Docker lab was not built (see the beforeAll error)');
    return lab;
  };
}
