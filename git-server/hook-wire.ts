import express, { type Request, type RequestHandler, type Response } from 'express';

/**
 * How the hooks talk to the git-server. The shell hooks (git-server/hooks/*, curl) send an
 * urlencoded form, which curl encodes for any bytes a push option may hold:
 * - `updates`: git's own lines, `<old> <new> <ref>`, a pre-receive line ending ` nff` when the
 *   update is not a fast-forward (refs hold no spaces, so the split is exact);
 * - `option`: each push option, in order; `state`: the reference-transaction's state.
 * They get plain text back: the messages, one per line (git shows them as `remote: …`), and the
 * status says the verdict (200 go on, 403 refused). The Node hook (dotgit-hook.cjs, used where
 * curl is missing) sends JSON and gets JSON; both end in the same request body shape.
 */
const form = express.urlencoded({ extended: false, limit: '1mb', parameterLimit: 200 });
const json = express.json({ limit: '1mb' });

const asList = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** A form's `updates` text as the JSON hooks' update objects (parseUpdates then validates them). */
export function updatesFromLines(text: unknown): unknown[] {
  if (typeof text !== 'string') return [];
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [oldSha, newSha, ref, flag] = line.split(' ');
      return { oldSha, newSha, ref, nonFastForward: flag === 'nff' };
    });
}

const fromForm: RequestHandler = (req, _res, next) => {
  if (req.is('application/x-www-form-urlencoded')) {
    const body = (req.body ?? {}) as Record<string, unknown>;
    req.body = { updates: updatesFromLines(body.updates), pushOptions: asList(body.option).map(String), state: body.state, text: true };
  }
  next();
};

/** Body parsing for the hook routes: JSON or the shell hooks' form, read into one shape. */
export const hookBody: RequestHandler[] = [json, form, fromForm];

/** The hook route's answer, in the form its caller speaks (see above). */
export function answerHook(req: Request, res: Response, answer: { allow?: boolean; messages: string[] }): void {
  if ((req.body as { text?: boolean } | undefined)?.text !== true) {
    res.json(answer);
    return;
  }
  res
    .status(answer.allow === false ? 403 : 200)
    .type('text/plain')
    .send(answer.messages.map((m) => `${m}\n`).join(''));
}
