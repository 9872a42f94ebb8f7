// The kernel's counters (weft_ctrs_v3, per CPU), summed.
import type * as native from 'weft-native';
import { COUNTER_FIELDS, countersCodec, type Counters } from './codec';

export function readCounters(map: native.BpfMap): Counters {
  const total = Object.fromEntries(COUNTER_FIELDS.map((f) => [f, 0n])) as Counters;
  for (const cpu of map.lookupPerCpu(Buffer.alloc(4)) ?? []) {
    const c = countersCodec.decode(cpu);
    for (const f of COUNTER_FIELDS) total[f] += c[f];
  }
  return total;
}
