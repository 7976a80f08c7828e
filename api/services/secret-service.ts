import { z } from 'zod';
import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { InputError } from '../../core/errors';
import { MAX_SECRET_BYTES, SECRET_NAME, isReservedSecretName } from '../../core/pipeline-secrets';
import type { Principal } from '../../core/principal';
import type { SecretBox } from '../../core/secret-box';
import { deleteSecret, listSecretNames, upsertSecret } from '../../core/stores/secrets-store';
import { requireRepoWrite } from '../authz';
import { environmentField, parseBody } from '../validation';
import { audit } from './audit';

/** Pipeline secrets (CONTRACT `PUT …/secrets/{name}`): write-only, sealed at rest, injected into the jobs that name them. */
export class SecretService {
  constructor(
    /** Repository-owned rows live in their tenant's shard database (ADR 0025). */
    private readonly router: ShardRouter,
    private readonly box: SecretBox,
  ) {}

  async put(principal: Principal, owner: string, repoName: string, name: string, body: unknown, requestId?: string): Promise<void> {
    const repo = await requireRepoWrite(await tenantDirectory(this.router).dbOfOwner(owner), principal, owner, repoName, 'setting secrets');
    checkName(name);
    const { value, environment } = parseBody(secretBody, body);
    await upsertSecret(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, repoId: repo.id, environment, name, valueEnc: this.box.seal(value), updatedBy: principal.username });
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'secret.put', target: `${owner}/${repoName}:${environment}:${name}`, requestId });
  }

  /** Names only: values are never readable back. */
  async list(principal: Principal, owner: string, repoName: string) {
    const repo = await requireRepoWrite(await tenantDirectory(this.router).dbOfOwner(owner), principal, owner, repoName, 'listing secrets');
    const rows = await listSecretNames(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id);
    return { secrets: rows.map((s) => ({ name: s.name, environment: s.environment || null, updatedBy: s.updated_by, updatedAt: s.updated_at })) };
  }

  async remove(principal: Principal, owner: string, repoName: string, name: string, environmentParam: unknown, requestId?: string): Promise<void> {
    const repo = await requireRepoWrite(await tenantDirectory(this.router).dbOfOwner(owner), principal, owner, repoName, 'deleting secrets');
    checkName(name);
    const environment = environmentOf(environmentParam);
    await deleteSecret(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id, environment, name);
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'secret.delete', target: `${owner}/${repoName}:${environment}:${name}`, requestId });
  }
}

function checkName(name: string): void {
  if (!SECRET_NAME.test(name)) throw new InputError('secret names are environment variable names: letters, digits and _, not starting with a digit, at most 100');
  if (isReservedSecretName(name)) throw new InputError(`${name} is reserved (DOTGIT_* and CI are set by the platform)`);
}

/** '' (or none) means "every job and environment". */
const secretEnvironment = z.preprocess((v) => (v === '' || v === null ? undefined : v), environmentField.optional()).transform((v) => v ?? '');

const secretBody = z.strictObject({
  value: z
    .string({ error: 'value must be a string' })
    .refine((v) => Buffer.byteLength(v) <= MAX_SECRET_BYTES, { error: `value is larger than ${MAX_SECRET_BYTES} bytes` })
    .refine((v) => !v.includes('\0'), { error: 'value must not contain NUL characters (environment variables cannot)' }),
  environment: secretEnvironment,
});

function environmentOf(v: unknown): string {
  return parseBody(secretEnvironment, v);
}
