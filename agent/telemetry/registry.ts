// The agent's (or control API's) one prom-client Registry. Modules that define metrics
// take the registry as an argument instead of using prom-client's global one, so two
// agents in one test process never share counters.
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, prefix: 'weft_' });
  // prom-client names three gauges `*_total`, which `promtool check metrics` rejects
  // (only counters may end in _total); they duplicate nothing we need, so they go.
  for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
    registry.removeSingleMetric(`weft_nodejs_${name}`);
  }
  return registry;
}
