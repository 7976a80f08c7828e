import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { requestVetted, SsrfRefusedError, vetTarget } from '../core/ssrf-guard';
import { signBody, USER_AGENT } from './webhook-activities';

export interface AlertDeps {
  /** Where alerts go; undefined: alerts are metrics only. */
  url?: string;
  /** HMAC key of `X-Hub-Signature-256`, as for repository webhooks. */
  secret?: string;
  allowHosts: readonly string[];
  timeoutMs: number;
}

/** A platform alert: something an operator must look at (e.g. a restore drill that failed). */
export interface Alert {
  event: 'restore_drill.failed';
  summary: string;
  detail: Record<string, unknown>;
}

/**
 * Platform alerts to the operator's webhook (`DOTGIT_ALERT_WEBHOOK_URL`), through the same SSRF
 * guard as repository webhooks. A 5xx or network error is retried by Temporal; a refused address or
 * a 4xx is final.
 */
export function createAlertActivities(deps: AlertDeps) {
  return {
    async sendAlert(alert: Alert): Promise<{ sent: boolean; status?: number }> {
      if (!deps.url) return { sent: false };
      const body = JSON.stringify({ ...alert, at: new Date().toISOString() });
      let target;
      try {
        target = await vetTarget(new URL(deps.url), { allowHosts: deps.allowHosts });
      } catch (err) {
        if (err instanceof SsrfRefusedError) throw ApplicationFailure.nonRetryable(err.message, 'AlertRefused');
        throw err;
      }
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'user-agent': USER_AGENT,
        'x-dotgit-event': alert.event,
        'x-dotgit-delivery': randomUUID(),
      };
      if (deps.secret) headers['x-hub-signature-256'] = signBody(deps.secret, body);
      const res = await requestVetted(target, { method: 'POST', headers, body, timeoutMs: deps.timeoutMs });
      if (res.status >= 500 || res.status === 429 || res.status === 408) throw new Error(`the alert receiver answered ${res.status}`);
      if (res.status >= 300) throw ApplicationFailure.nonRetryable(`the alert receiver answered ${res.status}`, 'AlertRejected');
      return { sent: true, status: res.status };
    },
  };
}

export type AlertActivities = ReturnType<typeof createAlertActivities>;
