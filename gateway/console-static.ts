import { existsSync } from 'node:fs';
import path from 'node:path';
import express, { type Router } from 'express';
import { errorBody } from '../core/http-errors';

/**
 * The console's policy: scripts, styles and connections only from this origin, no inline script or
 * style attribute, no framing, no plugins. Log text and user strings are rendered as text, and this
 * makes an injection that slipped through inert as well.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The built console (`console/dist`, made by console/build.ts): hashed assets under `/assets/`
 * cached for good, and `index.html` for every other GET that asks for HTML, so deep links
 * (`/runs/<id>`, `/acme/web`) load the app, which routes in the browser.
 */
export function consoleStaticRouter(distDir: string): Router {
  const router = express.Router();
  const index = path.join(distDir, 'index.html');
  router.use((_req, res, next) => {
    res.set({ 'Content-Security-Policy': CONSOLE_CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'X-Frame-Options': 'DENY' });
    next();
  });
  router.use('/assets', express.static(path.join(distDir, 'assets'), { immutable: true, maxAge: '365d', index: false }));
  router.get(/.*/, (req, res, next) => {
    if (req.path.startsWith('/assets/') || !req.accepts('html') || req.accepts(['json', 'html']) === 'json') return next();
    if (!existsSync(index)) {
      res.status(503).json(errorBody('unavailable', 'the console is not built: run `npm run build:console` (npm start and npm test build it)', req.requestId));
      return;
    }
    res.set('Cache-Control', 'no-cache').sendFile(index);
  });
  return router;
}
