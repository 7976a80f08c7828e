import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { UnavailableError } from '../../core/errors';
import { ORCHESTRATION_QUEUE } from '../../core/run-types';

/**
 * Starts `workflowType` as `workflowId` on the orchestration queue. Answers false when a run with
 * that id is already going (the id is what makes an operation one at a time; the caller says what
 * that means for its request). Temporal unreachable or refusing: UnavailableError, retry in 5 s,
 * the message naming `what` was being started.
 */
export async function startOrchestrationWorkflow(temporal: () => Promise<Client>, workflowType: string, workflowId: string, arg: unknown, what: string): Promise<boolean> {
  let client: Client;
  try {
    client = await temporal();
  } catch (err) {
    throw new UnavailableError(`could not reach Temporal: ${(err as Error).message}`, 5);
  }
  try {
    await client.workflow.start(workflowType, { taskQueue: ORCHESTRATION_QUEUE, workflowId, args: [arg] });
    return true;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
    throw new UnavailableError(`could not start ${what}: ${(err as Error).message}`, 5);
  }
}
