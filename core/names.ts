import { InputError } from './errors';

/** CONTRACT "git": owner and repository names. Checked before any path is built from them. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function isValidName(name: string): boolean {
  return NAME.test(name) && !name.includes('..') && !name.toLowerCase().endsWith('.git');
}

/** Throws InputError naming the field when `name` is not a valid owner/repo/user name. */
export function assertValidName(field: string, name: unknown): string {
  if (typeof name !== 'string' || !isValidName(name)) {
    throw new InputError(
      `${field} must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$, contain no "..", and not end in ".git"`,
    );
  }
  return name;
}
