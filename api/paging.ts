import { InputError } from '../core/errors';

/**
 * `?after=&limit=` of the lists read a page at a time by id (repositories, tokens; the audit log
 * reads its own the same way): after 0 and 100 items unless told, at most 1000. The route's schema
 * (api/schemas/common `pageQuery`) has already refused what is not a whole number.
 */
export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1000;

export function pageOf(query: Record<string, unknown>): { after: number; limit: number } {
  const whole = (name: string, min: number, max: number, fallback: number): number => {
    const v = query[name];
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || !/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) {
      throw new InputError(`query parameter ${name} must be a whole number from ${min} to ${max}`);
    }
    return Number(v);
  };
  return { after: whole('after', 0, Number.MAX_SAFE_INTEGER, 0), limit: whole('limit', 1, MAX_PAGE, DEFAULT_PAGE) };
}

/** The answer's `next`: the last id of a full page (there may be more), null after a short one. */
export function nextAfter(ids: number[], limit: number): number | null {
  return ids.length === limit ? ids[ids.length - 1] : null;
}
