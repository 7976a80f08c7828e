import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { UnavailableError } from '../../core/errors';
import { startWorkflow, type WorkflowArgs, type WorkflowName } from '../../core/workflow-starter';

/**
 * Starts `workflowType` as `workflowId` on the orchestration queue, its argument typed by the
 * workflow's own signature (core/workflow-starter.ts). Answers false when a run with
 * that id is already going (the id is what makes an operation one at a time; the caller says what
 * that means for its request). Temporal unreachable or refusing: UnavailableError, retry in 5 s,
 * the message naming `what` was being started.
 */
export async function startOrchestrationWorkflow<W extends WorkflowName>(
  temporal: () => Promise<Client>,
  workflowType: W,
  workflowId: string,
  arg: WorkflowArgs<W>[0],
  what: string,
): Promise<boolean> {
  let client: Client;
  try {
    client = await temporal();
  } catch (err) {
    throw new UnavailableError(`could not reach Temporal: ${(err as Error).message}`, 5, { cause: err });
  }
  try {
    await startWorkflow(client, workflowType, workflowId, [arg] as WorkflowArgs<W>);
    return true;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
    throw new UnavailableError(`could not start ${what}: ${(err as Error).message}`, 5, { cause: err });
  }
}
