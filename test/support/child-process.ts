import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

export interface StartedProcess {
  child: ChildProcess;
  /** The first line that matched `ready`. */
  line: string;
  /** stdout and stderr as they arrived, interleaved. */
  output: () => string;
  stdout: () => string;
  stderr: () => string;
}

/**
 * Starts a child process in the repository root and resolves with it once `ready` matched a line
 * of its stdout or stderr; rejects if it exits first or prints nothing matching within 90 s.
 */
export function spawnUntil(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): Promise<StartedProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let stdout = '';
    let stderr = '';
    let done = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not print ${ready}:\n${output.slice(-3000)}`));
    }, 90_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((l) => ready.test(l));
      if (line && !done) {
        done = true;
        clearTimeout(timer);
        resolve({ child, line, output: () => output, stdout: () => stdout, stderr: () => stderr });
      }
    };
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      onData(chunk);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      onData(chunk);
    });
    child.on('exit', (code) => {
      if (!done) {
        clearTimeout(timer);
        reject(new Error(`${command} exited with ${code}:\n${output.slice(-3000)}`));
      }
    });
  });
}

/** The child's exit code, once it has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}
