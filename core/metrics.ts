import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Request, RequestHandler } from 'express';
import client, { type Histogram } from 'prom-client';

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
 * Times a request from arrival to the end of its answer (or the client going away), labelled by
 * `routeOf`, so label values stay bounded whatever paths clients send. Works on node's own request
 * and response (the gateway's forwarding path never enters express). Each label combination's
 * histogram child is made once and kept, so a request builds no label object and no child (the
 * child still validates and hashes its labels on each observation, inside prom-client).
 */
export function requestTimer<R extends IncomingMessage>(service: string, routeOf: (req: R) => string): (req: R, res: ServerResponse) => void {
  startProcessMetrics();
  const children = new Map<string, Histogram.Internal<string>>();
  return (req, res) => {
    const started = performance.now();
    res.once('close', () => {
      const route = routeOf(req);
      const method = req.method && METHODS.has(req.method) ? req.method : 'other';
      const code = String(res.statusCode);
      const key = `${route} ${method} ${code}`;
      let child = children.get(key);
      if (!child) children.set(key, (child = httpDuration.labels(service, route, method, code)));
      child.observe((performance.now() - started) / 1000);
    });
  };
}

/** `requestTimer` as express middleware, labelled by the express route template by default. */
export function httpMetrics(service: string, routeOf: (req: Request) => string = routeTemplate): RequestHandler {
  const timed = requestTimer(service, routeOf);
  return (req, res, next) => {
    timed(req, res);
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
