import { DotgitError } from '../../core/errors';

/**
 * Thrown when an LFS request is well-formed JSON but does not fit the Git LFS API (bad oid or size,
 * unknown operation or transfer) or when uploaded content does not match its oid. The LFS spec
 * answers these with 422, which no core error carries.
 */
export class LfsValidationError extends DotgitError {
  override readonly name = 'LfsValidationError';
  readonly code = 'lfs_validation_failed';
}
