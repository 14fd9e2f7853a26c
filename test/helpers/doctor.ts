// `tsvtep doctor` run in a host namespace with an environment (DOCKER_HOST,
// OVS_RUNDIR), and the report's line for one check.

import type { ChildProcess } from 'node:child_process';
import { CLI_PATH } from '../../src/lab/process';
import type { Topology } from '../../src/lab/topology';

export interface DoctorRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runDoctor(topology: Topology, ns: string, args: string[], env: Record<string, string> = {}, wrapper: string[] = []): Promise<DoctorRun> {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const child = topology.spawn(ns, [...wrapper, 'env', ...envArgs, process.execPath, CLI_PATH, 'doctor', ...args]);
  return collectOutput(child);
}

/** The child's output and exit code once it closes (killed after 60 s). */
export function collectOutput(child: ChildProcess): Promise<DoctorRun> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The line of check name ("pass  NAME  detail", trimmed), or undefined if the report has none. */
export function doctorLine(run: DoctorRun, name: string): string | undefined {
  return run.stdout
    .split('\n')
    .find((line) => /^ {2}(pass|FAIL|warn|skip) {2}/.test(line) && line.slice(8).startsWith(`${name} `))
    ?.trim();
}
