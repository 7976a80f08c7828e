/**
 * A pipeline file for deploy tests: its push trigger never fires (no runs get in the way), and each
 * environment deploys with one step that succeeds (`approval` makes it wait at the gate).
 */
export function deployOnlyPipeline(environments: Record<string, { approval?: boolean }>): string {
  const envs = Object.entries(environments)
    .map(([name, e]) => `  ${name}:\n${e.approval ? '    approval: true\n' : ''}    deploy: [{ run: "true" }]\n`)
    .join('');
  return `on:\n  push:\n    branches: [no-pipeline-runs-here]\njobs:\n  noop:\n    steps: [{ run: "true" }]\nenvironments:\n${envs}`;
}
