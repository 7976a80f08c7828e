import type { Request, RequestHandler } from 'express';
import client from 'prom-client';

/**
 * Prometheus metrics every process shares (ADR 0018): the default process metrics (CPU, memory,
 * event-loop lag, GC, handles) and RED histograms of its HTTP server. Each process serves them on
 * its own `/metrics` (core/http.ts healthAndMetrics; the gateway's app), from prom-client's
 * default registry.
 */

let started = false;

/** Default process metrics, once per process (a second call would register them twice). */
export function startProcessMetrics(): void {
  if (started) return;
  started = true;
  client.collectDefaultMetrics();
}

/** Request durations by route class: buckets from 5 ms (API reads) to 5 min (clones and pushes). */
const httpDuration = new client.Histogram({
  name: 'dotgit_http_request_duration_seconds',
  help: 'HTTP requests served, by service, route class (the route template, never a raw path), method and status code',
  labelNames: ['service', 'route', 'method', 'code'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
});

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The route label of an express request: the matched route's template (`/api/v1/runs/:id`), which
 * has a bounded number of values; requests no route matched are `unmatched`.
 */
export function routeTemplate(req: Request): string {
  const route = (req as { route?: { path?: unknown } }).route;
  if (route && typeof route.path === 'string') return `${req.baseUrl ?? ''}${route.path}` || '/';
  if (req.path === '/metrics' || req.path === '/healthz' || req.path === '/readyz') return req.path;
  return 'unmatched';
}

/**
 * Times every request from arrival to the end of its answer (or the client going away), labelled
 * by `routeOf` (default: the express route template), so label values stay bounded whatever paths
 * clients send.
 */
export function httpMetrics(service: string, routeOf: (req: Request) => string = routeTemplate): RequestHandler {
  startProcessMetrics();
  return (req, res, next) => {
    const end = httpDuration.startTimer();
    res.once('close', () => {
      end({ service, route: routeOf(req), method: METHODS.has(req.method) ? req.method : 'other', code: String(res.statusCode) });
    });
    next();
  };
}

/** The `/metrics` answer: prom-client's default registry, plus text `extra` gives (e.g. the Temporal SDK's). */
export async function metricsText(extra?: () => Promise<string>): Promise<string> {
  const own = await client.register.metrics();
  if (!extra) return own;
  const more = await extra().catch(() => '');
  return more ? `${own}\n${more}` : own;
}

export const METRICS_CONTENT_TYPE = client.register.contentType;
