import { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, ActivityInterceptorsFactory, Next } from '@temporalio/worker';
import { withLogContext, workLogFields } from '../core/log-context';

/**
 * Every line an activity logs carries what the activity works on (issue 14 item 5, ADR 0028):
 * `runId`, `tenant` and `repo` (`owner/name`), whichever logger writes it (the worker's pino
 * logger in a driver or a store, or `Context.log`). Read from the activity's input where it names
 * them, else from its workflow's id: the workflows of a repository are named after it
 * (core/log-context.ts fieldsOfWorkflowId), and a pipeline's workflow id is its run id.
 */
class ActivityLogContext implements ActivityInboundCallsInterceptor {
  execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const workflowId = Context.current().info.workflowExecution?.workflowId;
    return withLogContext(workLogFields(input.args[0], workflowId), () => next(input));
  }
}

/** Worker option: the activity interceptor that sets each activity's log context. */
export const activityLogContext: { interceptors: { activity: ActivityInterceptorsFactory[] } } = {
  interceptors: { activity: [() => ({ inbound: new ActivityLogContext() })] },
};
