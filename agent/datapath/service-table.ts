// Services in the maps (weft_svc_v1 → a rev of weft_backend_v1 and weft_slot_v1),
// changed as a minimal diff: a changed service gets a new rev written next to the live
// one and flipped with one update, so a connecting socket always reads a whole table.
import type * as native from 'weft-native';
import { WeftError } from '../lib/errors';
import type { Logger } from '../telemetry/logger';
import { bpfError } from './bpf-error';
import { SVC_F_MAGLEV, SVC_F_REDIRECT, backendCodec, revKeyCodec, svcCodec, svcKeyCodec, u32Codec, type SvcEntry, type SvcKey } from './codec';
import type { DatapathMaps } from './maps';
import {
  MAX_BACKENDS_PER_SERVICE, MAX_SLOTS_PER_SERVICE, sameBackends, serviceName, slotCount, slotTable, validateServices,
  type DatapathService,
} from './services';

export interface ApplySummary { added: string[]; updated: string[]; removed: string[]; unchanged: string[] }

interface CurrentService { key: SvcKey; entry: SvcEntry; service: DatapathService }

export class ServiceTable {
  private swept = false;

  constructor(private readonly maps: Pick<DatapathMaps, 'svc' | 'backend' | 'slot'>, private readonly log: Logger) {}

  /** Validates every service first (nothing changes on error), then applies the
   *  minimal diff against what the maps hold now (also right after adopting). */
  apply(services: DatapathService[]): ApplySummary {
    validateServices(services);
    this.checkCapacity(services);
    if (!this.swept) { this.sweepOrphans(); this.swept = true; }
    const current = this.read();
    const summary: ApplySummary = { added: [], updated: [], removed: [], unchanged: [] };
    let nextId = Math.max(0, ...[...current.values()].map((c) => c.entry.id)) + 1;
    const wanted = new Set<string>();
    try {
      for (const s of services) {
        const name = serviceName(s);
        wanted.add(name);
        const cur = current.get(name);
        if (!cur) {
          this.writeService(s, nextId++, 1);
          summary.added.push(name);
        } else if (cur.service.mode === s.mode && (cur.service.lb ?? 'random') === (s.lb ?? 'random')
          && sameBackends(cur.service.backends, s.backends) && cur.entry.slotCount === slotCount(s)) {
          // (The slot count check also rewrites redirect services adopted from an agent
          // that gave them no slots, before fail-open needed them.)
          summary.unchanged.push(name);
        } else {
          // New rev first, then one update flips the service, then the old rev goes.
          this.writeService(s, cur.entry.id, (cur.entry.rev + 1) >>> 0);
          this.deleteRev(cur.entry);
          summary.updated.push(name);
        }
      }
      for (const [name, cur] of current) {
        if (wanted.has(name)) continue;
        this.maps.svc.delete(svcKeyCodec.encode(cur.key));
        this.deleteRev(cur.entry);
        summary.removed.push(name);
      }
    } catch (e) {
      throw bpfError('applying services', e);
    }
    this.log.info({ added: summary.added.length, updated: summary.updated.length, removed: summary.removed.length,
      unchanged: summary.unchanged.length }, 'services applied');
    return summary;
  }

  /** The services as the maps hold them now. */
  list(): DatapathService[] {
    return [...this.read().values()].map((c) => c.service);
  }

  private checkCapacity(services: DatapathService[]): void {
    const backends = services.reduce((n, s) => n + s.backends.length, 0);
    const slots = services.reduce((n, s) => n + slotCount(s), 0);
    // One service at a time holds two revs while it is being switched.
    const over = (what: string, need: number, max: number) => new WeftError('WEFT_ERR_CAPACITY',
      `${services.length} services need ${need} ${what} entries, the map holds ${max}`);
    if (services.length > this.maps.svc.maxEntries) throw over('service', services.length, this.maps.svc.maxEntries);
    if (backends + MAX_BACKENDS_PER_SERVICE > this.maps.backend.maxEntries) {
      throw over('backend', backends + MAX_BACKENDS_PER_SERVICE, this.maps.backend.maxEntries);
    }
    if (slots + MAX_SLOTS_PER_SERVICE > this.maps.slot.maxEntries) {
      throw over('slot', slots + MAX_SLOTS_PER_SERVICE, this.maps.slot.maxEntries);
    }
  }

  private read(): Map<string, CurrentService> {
    const out = new Map<string, CurrentService>();
    for (const [k, v] of this.maps.svc.entries()) {
      const key = svcKeyCodec.decode(k);
      const entry = svcCodec.decode(v);
      const backends = [];
      for (let i = 0; i < entry.backendCount; i++) {
        const b = this.maps.backend.lookup(revKeyCodec.encode({ svcId: entry.id, rev: entry.rev, index: i }));
        if (b) backends.push(backendCodec.decode(b));
      }
      const service: DatapathService = { vip: key.vip, port: key.port, protocol: key.protocol,
        mode: entry.flags & SVC_F_REDIRECT ? 'redirect' : 'l4', ...(entry.flags & SVC_F_MAGLEV ? { lb: 'maglev' as const } : {}), backends };
      out.set(serviceName(service), { key, entry, service });
    }
    return out;
  }

  private writeService(s: DatapathService, id: number, rev: number): void {
    // Redirect-mode services get slots too: fail-open balances them in the kernel while
    // no agent runs, and that has to work from the maps as the last agent left them.
    const slots = slotTable(s);
    if (s.backends.length) {
      this.maps.backend.updateBatch(
        s.backends.map((_, index) => revKeyCodec.encode({ svcId: id, rev, index })),
        s.backends.map((b) => backendCodec.encode(b)));
    }
    if (slots.length) {
      this.maps.slot.updateBatch(slots.map((_, index) => revKeyCodec.encode({ svcId: id, rev, index })), slots.map((b) => u32Codec.encode(b)));
    }
    // The flip: connecting sockets now read the new rev.
    this.maps.svc.update(svcKeyCodec.encode(s), svcCodec.encode({
      id, rev, slotCount: slots.length, backendCount: s.backends.length,
      flags: (s.mode === 'redirect' ? SVC_F_REDIRECT : 0) | (s.lb === 'maglev' ? SVC_F_MAGLEV : 0),
    }));
  }

  private deleteRev(e: SvcEntry): void {
    const keys = (n: number) => Array.from({ length: n }, (_, index) => revKeyCodec.encode({ svcId: e.id, rev: e.rev, index }));
    deleteAll(this.maps.backend, keys(e.backendCount));
    deleteAll(this.maps.slot, keys(e.slotCount));
  }

  /** An agent killed between writing a new rev and flipping to it leaves entries no
   *  service points at; the first apply after open removes them before ids are reused. */
  private sweepOrphans(): void {
    const live = new Set([...this.maps.svc.entries()].map(([, v]) => { const e = svcCodec.decode(v); return `${e.id}/${e.rev}`; }));
    for (const map of [this.maps.backend, this.maps.slot]) {
      const dead = map.keys().filter((k) => { const r = revKeyCodec.decode(k); return !live.has(`${r.svcId}/${r.rev}`); });
      if (dead.length) { deleteAll(map, dead); this.log.info({ map: map.name, entries: dead.length }, 'removed orphaned entries'); }
    }
  }
}

function deleteAll(map: native.BpfMap, keys: Buffer[]): void {
  if (!keys.length) return;
  try { map.deleteBatch(keys); } catch { for (const k of keys) map.delete(k); }
}
