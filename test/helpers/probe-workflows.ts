/** A workflow that does nothing: what the queue-metrics test queues up, then drains with a worker of its own. */
export async function queueMetricsProbe(): Promise<string> {
  return 'done';
}
