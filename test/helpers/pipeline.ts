import { parsePipeline, PipelineSpecError } from '../../core/pipeline-spec';

/** The error `parsePipeline` refuses `text` with; fails the test when it is accepted or throws something else. */
export function pipelineErrorOf(text: string): PipelineSpecError {
  try {
    parsePipeline(text);
  } catch (err) {
    if (err instanceof PipelineSpecError) return err;
    throw err;
  }
  throw new Error('expected a PipelineSpecError');
}
