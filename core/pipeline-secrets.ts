import { SecretBox } from './secret-box';

/** The key purpose of pipeline secrets: one master secret never seals two kinds of data with one key. */
const PURPOSE = 'pipeline-secret';

/** Secret names: environment variable names, minus our own reserved prefix. */
export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;
export const MAX_SECRET_BYTES = 64 * 1024;

export function isReservedSecretName(name: string): boolean {
  return /^DOTGIT_/i.test(name) || name === 'CI';
}

/** Seals and opens pipeline secret values (API seals, the sandbox worker opens). */
export function pipelineSecretBox(masterSecret: string): SecretBox {
  return new SecretBox(masterSecret, PURPOSE);
}
