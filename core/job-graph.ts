import type { PipelineSpec } from './pipeline-spec';

/**
 * A run's job graph (issue 18, the run page's DAG): which of the run's jobs each job needs. Runs
 * record steps, not the file's `needs:`, so the graph comes from the pipeline file at the run's
 * commit (what the run itself loaded) and is laid over the jobs the run's steps name. Matrix
 * instances (`test (18, pg)`) are matched to their job by name, so instances the file did not list
 * (a matrix made while the run ran) still get their job's edges. Pure: the api reads and caches.
 */

/** What the graph keeps of a file: each job's name in the file, and the file jobs it needs. */
export interface FileNeeds {
  /** A job instance's name (as the parsed spec lists it) → its job's name in the file. */
  fileJobOf: Record<string, string>;
  /** A job's name in the file → the names in the file of the jobs it needs. */
  needs: Record<string, string[]>;
}

const INSTANCE = /^(.+) \([^()]*\)$/;

export function fileNeeds(spec: PipelineSpec): FileNeeds {
  const fileJobOf: Record<string, string> = {};
  for (const j of spec.jobs) fileJobOf[j.name] = j.matrix?.job ?? j.name;
  const needs: Record<string, string[]> = {};
  for (const j of spec.jobs) {
    const own = fileJobOf[j.name];
    needs[own] = [...new Set([...(needs[own] ?? []), ...j.needs.map((n) => fileJobOf[n] ?? n)])];
  }
  return { fileJobOf, needs };
}

/** The run's jobs (in the order given) each with the run's jobs it needs; none when the file is unknown. */
export function jobGraph(file: FileNeeds | undefined, jobs: readonly string[]): Array<{ name: string; needs: string[] }> {
  if (!file) return jobs.map((name) => ({ name, needs: [] }));
  const fileJob = (name: string) => file.fileJobOf[name] ?? INSTANCE.exec(name)?.[1] ?? name;
  return jobs.map((name) => {
    const wanted = new Set(file.needs[fileJob(name)] ?? []);
    return { name, needs: jobs.filter((other) => other !== name && wanted.has(fileJob(other))) };
  });
}
