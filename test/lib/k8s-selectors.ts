// Kubernetes label and field selectors, as the API server parses and applies them.
//   labels: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, comma = AND
//   fields: `f=v`, `f==v`, `f!=v`, comma = AND, over a per-kind set of supported fields
// A selector that does not parse, or names a field the kind does not index, is a 400
// BadRequest in the real API; parse errors here are SelectorError for the same reason.

export class SelectorError extends Error {}

type LabelReq =
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!exists' };

export type Selector = (obj: KObject) => boolean;

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

/** Splits on commas that are not inside parentheses. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0, cur = '';
  for (const c of s) {
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (c === ',' && depth === 0) { out.push(cur); cur = ''; } else cur += c;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t.length > 0);
}

const KEY = /^([a-z0-9A-Z._/-]+)$/;

function parseLabelTerm(t: string): LabelReq {
  let m = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t);
  if (m) return { key: m[1]!, op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()) };
  m = /^([^\s!=]+)\s*(==|=|!=)\s*(\S*)$/.exec(t);
  if (m) return { key: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]! };
  m = /^!\s*([^\s!=]+)$/.exec(t);
  if (m && KEY.test(m[1]!)) return { key: m[1]!, op: '!exists' };
  if (KEY.test(t)) return { key: t, op: 'exists' };
  throw new SelectorError(`unable to parse requirement: ${JSON.stringify(t)}`);
}

export function parseLabelSelector(s: string | null | undefined): Selector {
  if (!s) return () => true;
  const reqs = splitTerms(s).map(parseLabelTerm);
  return (obj) => {
    const labels = obj.metadata?.labels ?? {};
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      const v = labels[r.key];
      switch (r.op) {
        case '=': return has && v === r.value;
        case '!=': return !has || v !== r.value;
        case 'in': return has && r.values.includes(v!);
        case 'notin': return !has || !r.values.includes(v!);
        case 'exists': return has;
        case '!exists': return !has;
      }
    });
  };
}

function getPath(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const p of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

/** The string the API server compares a field selector against ("" for unset). */
function fieldValue(obj: KObject, field: string): string {
  const v = getPath(obj, field);
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : String(v);
}

/** `supported` is the kind's set of selectable fields (metadata.name and
 *  metadata.namespace are selectable on every kind). */
export function parseFieldSelector(s: string | null | undefined, supported: readonly string[]): Selector {
  if (!s) return () => true;
  const reqs = splitTerms(s).map((t) => {
    const m = /^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/.exec(t);
    if (!m) throw new SelectorError(`invalid selector: '${t}'; can't understand '${t}'`);
    const field = m[1]!;
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !supported.includes(field)) {
      throw new SelectorError(`field label not supported: ${field}`);
    }
    return { field, neg: m[2] === '!=', value: m[3]!.trim() };
  });
  return (obj) => reqs.every((r) => (fieldValue(obj, r.field) === r.value) !== r.neg);
}
