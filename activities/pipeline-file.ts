import { answerMessage, fetchFromGitServer } from '../core/git-upstreams';
import { SERVICE_HEADER, signServiceToken } from '../core/internal-identity';
import { PIPELINE_PATH } from '../core/pipeline-spec';

/** Where workers read pipeline files: any git-server (ADR 0014: it reaches the node holding the repository). */
export interface PipelineFileSource {
  /** Git-server base URLs (`DOTGIT_GIT_UPSTREAMS`). */
  gitUpstreams: readonly string[];
  /** Signs the service token the git-server's internal API asks for. */
  internalSecret: string;
}

/** The pipeline file at a commit, read through a git-server as the api does; undefined when there is none. */
export async function readPipelineFile(deps: PipelineFileSource, input: { tenant: string; repo: string; commit: string }): Promise<{ text?: string; tooLarge?: string }> {
  const res = await fetchFromGitServer(deps.gitUpstreams, '/internal/repos/pipeline-file', {
    method: 'POST',
    headers: { 'content-type': 'application/json', [SERVICE_HEADER]: await signServiceToken(deps.internalSecret, 'worker') },
    body: JSON.stringify({ owner: input.tenant, name: input.repo, commit: input.commit }),
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status === 413) return { tooLarge: await answerMessage(res) };
  // Anything else is worth a retry (a node restarting, a repository being moved).
  if (!res.ok) throw new Error(`git-server answered ${res.status} reading ${PIPELINE_PATH} of ${input.tenant}/${input.repo}: ${await answerMessage(res)}`);
  return { text: ((await res.json()) as { text: string | null }).text ?? undefined };
}

