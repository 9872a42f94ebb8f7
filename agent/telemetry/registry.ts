// The agent's (or control API's) one prom-client Registry. Modules that define metrics
// take the registry as an argument instead of using prom-client's global one, so two
// agents in one test process never share counters.
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, prefix: 'weft_process_' });
  return registry;
}
