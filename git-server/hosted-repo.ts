import { runGit } from '../core/git';

/**
 * Settings a hosting server wants on every bare repository, at creation and on a moved copy: reject
 * corrupt objects, allow filters and tips for partial and shallow fetches, take pushes over HTTP.
 */
const HOSTED_REPO_CONFIG: readonly (readonly [string, string])[] = [['receive.fsckObjects', 'true'], ['uploadpack.allowFilter', 'true'], ['uploadpack.allowAnySHA1InWant', 'true'], ['http.receivepack', 'true']];

/** Writes HOSTED_REPO_CONFIG into the bare repository `gitDir`. */
export async function configureHostedRepo(gitDir: string): Promise<void> {
  for (const [k, v] of HOSTED_REPO_CONFIG) await runGit(['--git-dir', gitDir, 'config', k, v]);
}
