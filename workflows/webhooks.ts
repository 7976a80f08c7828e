import { type ActivityOptions, CancellationScope, isCancellation, log, ParentClosePolicy, proxyActivities, startChild, uuid4, WorkflowIdReusePolicy } from '@temporalio/workflow';
import type { WebhookActivities } from '../activities/webhook-activities';
import { ORCHESTRATION_QUEUE, storageQueue } from '../core/run-types';
import type { WebhookDispatchInput } from '../core/webhook-payloads';

// Kept in step with NON_RETRYABLE_WEBHOOK_ERRORS in activities/webhook-activities.ts (a value
// import from activities is not allowed in workflow code).
const NON_RETRYABLE = ['WebhookRefused', 'WebhookRejected', 'WebhookMisconfigured'];

const PLANNING_OPTIONS: Omit<ActivityOptions, 'taskQueue'> = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
};

/**
 * Each attempt is recorded by the activity; Temporal spaces them out (2 s, 4 s, … up to 10 min,
 * 8 attempts, about 8 minutes in all) under one delivery id.
 */
const delivery = proxyActivities<WebhookActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', maximumAttempts: 8, nonRetryableErrorTypes: NON_RETRYABLE },
});

/** Delivers a repository's events, in order, to every hook subscribed to each; hooks of one event in parallel. */
export async function webhookDispatch(input: WebhookDispatchInput): Promise<{ delivered: number; failed: number }> {
  let delivered = 0;
  let failed = 0;
  // A push's payload reads the repository: planned beside the node holding it (ADR 0014). Inputs
  // from before nodes (and their histories) name none: the orchestration queue; the input decides.
  const planning = proxyActivities<WebhookActivities>({ taskQueue: input.node ? storageQueue(input.node) : ORCHESTRATION_QUEUE, ...PLANNING_OPTIONS });
  for (const event of input.events) {
    const plan = await planning.planWebhookEvent({ tenantId: input.tenantId, repoId: input.repoId, event });
    if (!plan) continue;
    await Promise.all(
      plan.hookIds.map(async (hookId) => {
        // One id per event and hook, the same for every retry, so receivers can de-duplicate.
        const deliveryId = uuid4();
        try {
          await delivery.deliverWebhook({ tenantId: input.tenantId, hookId, deliveryId, event: plan.event, action: plan.action, body: plan.body });
          delivered++;
        } catch (err) {
          if (isCancellation(err)) throw err;
          failed++; // every attempt is in the delivery log
        }
      }),
    );
  }
  return { delivered, failed };
}

/**
 * Starts a `webhookDispatch` child that outlives its parent (ParentClosePolicy ABANDON), for use
 * from other workflows (pipeline, deploy). Never throws: webhooks must not fail or cancel the
 * caller. `workflowId` must be deterministic and unique per event (e.g. `webhook:<deploy id>:<state>`).
 * A workflow with recorded histories calls it behind `patched('<name>')`.
 */
export async function startWebhookDispatch(input: WebhookDispatchInput, workflowId: string): Promise<void> {
  try {
    await CancellationScope.nonCancellable(() =>
      startChild(webhookDispatch, {
        workflowId,
        args: [input],
        taskQueue: ORCHESTRATION_QUEUE,
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      }),
    );
  } catch (err) {
    log.warn('webhook dispatch not started', { workflowId, error: (err as Error).message });
  }
}
