import type { ErrorRequestHandler, Response } from 'express';
import { httpErrorOf } from '../../core/http-errors';
import { LFS_MEDIA_TYPE } from './batch';

export function sendLfs(res: Response, status: number, body: unknown): void {
  res.status(status).type(LFS_MEDIA_TYPE).send(JSON.stringify(body));
}

/**
 * Error answers in the shape the LFS spec gives (`message`, `request_id`), which git-lfs prints to
 * the user, plus the platform's usual `error` object; the status comes from the one mapper,
 * core/http-errors.ts. On 401 both `LFS-Authenticate` and `WWW-Authenticate` ask for Basic credentials, so
 * git-lfs retries with the ones it has (URL or credential helper). Unknown errors go on to the
 * service's error middleware, which logs them as 500s.
 */
export function lfsErrors(): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const e = err as { status?: unknown; type?: unknown; message?: unknown };
    let status: number;
    let code: string;
    const mapped = httpErrorOf(err);
    if (mapped) {
      status = mapped.status;
      code = mapped.code;
    } else if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
      // body-parser: malformed JSON (400), too large (413).
      status = e.status;
      code = typeof e.type === 'string' ? e.type : 'bad_request';
    } else {
      next(err);
      return;
    }
    if (status === 401) {
      const challenge = 'Basic realm="dotgit", charset="UTF-8"';
      res.setHeader('LFS-Authenticate', challenge);
      res.setHeader('WWW-Authenticate', challenge);
    }
    const message = String(e.message ?? code);
    const requestId = req.requestId ?? req.header('x-request-id') ?? null;
    sendLfs(res, status, { message, request_id: requestId, error: { code, message, requestId } });
  };
}
