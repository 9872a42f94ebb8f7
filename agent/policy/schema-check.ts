// Checks one parsed document against its kind's JSON Schema (ajv, allErrors) and turns
// ajv's errors into located diagnostics with messages written for people.
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { API_VERSION, KINDS, kindSchemas, type Kind } from './kinds';
import { formatPath, type PathSegment, type SourceDoc } from './source';
import { preview, type Diagnostic } from './diagnostic';

let ajv: Ajv | undefined;
/** Schema problems reported per document at most. */
export const MAX_ERRORS_PER_DOCUMENT = 50;
const validators = new Map<Kind, ValidateFunction>();

function validatorFor(kind: Kind): ValidateFunction {
  let v = validators.get(kind);
  if (!v) {
    // optimize:false: ajv's code optimiser triples compile time, which a one-shot
    // `weft validate` pays in full and never earns back.
    ajv ??= new Ajv({ allErrors: true, strict: true, verbose: true, code: { optimize: false } });
    v = ajv.compile(kindSchemas[kind].schema);
    validators.set(kind, v);
  }
  return v;
}

export function isKind(k: unknown): k is Kind {
  return typeof k === 'string' && (KINDS as string[]).includes(k);
}

/** Envelope checks that must pass before a kind's schema can be chosen. */
export function checkEnvelope(value: unknown, src: SourceDoc): { kind?: Kind; diagnostics: Diagnostic[] } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { diagnostics: [src.at([], 'a policy document must be a mapping with apiVersion, kind, metadata and spec')] };
  }
  const kind = (value as { kind?: unknown }).kind;
  if (kind === undefined) return { diagnostics: [src.at([], 'missing required field "kind"')] };
  if (!isKind(kind)) {
    return { diagnostics: [src.at(['kind'], `unknown kind ${preview(kind)} (expected one of ${KINDS.join(', ')})`)] };
  }
  return { kind, diagnostics: [] };
}

export function checkSchema(kind: Kind, value: unknown, src: SourceDoc): Diagnostic[] {
  const validate = validatorFor(kind);
  if (validate(value)) return [];
  const errors = validate.errors ?? [];
  // An anyOf failure is reported once, as itself; its branches' errors are noise.
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const out: Diagnostic[] = [];
  for (const e of errors) {
    // A document with thousands of wrong fields is reported by its first ones: each
    // diagnostic costs a position lookup, and nobody reads the thousandth.
    if (out.length >= MAX_ERRORS_PER_DOCUMENT) break;
    if (e.keyword !== 'anyOf' && anyOfPaths.has(e.instancePath) && e.schemaPath.includes('/anyOf/')) continue;
    // The failing key itself is reported (below); the summary adds nothing.
    if (e.keyword === 'propertyNames') continue;
    out.push(describe(e, src));
  }
  return out;
}

function pathOf(instancePath: string): PathSegment[] {
  if (!instancePath) return [];
  return instancePath.slice(1).split('/').map((s) => {
    const u = s.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^\d+$/.test(u) ? Number(u) : u;
  });
}

function describe(e: ErrorObject, src: SourceDoc): Diagnostic {
  const path = pathOf(e.instancePath);
  const propertyName = (e as { propertyName?: string }).propertyName;
  if (propertyName !== undefined) {
    const title = (e.parentSchema as { title?: string } | undefined)?.title ?? 'key';
    return src.at([...path, propertyName], `${formatPath(path)}: ${preview(propertyName)} is not a valid ${title}`, { key: true });
  }
  const where = formatPath(path);
  const prefix = where ? `${where}: ` : '';
  let gotText: string | undefined;
  const got = { toString: () => (gotText ??= preview(e.data)) };
  const title = (e.parentSchema as { title?: string } | undefined)?.title;
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = (e.params as { additionalProperty: string }).additionalProperty;
      return src.at([...path, field], `unknown field "${formatPath([...path, field])}"`, { key: true });
    }
    case 'required': {
      const field = (e.params as { missingProperty: string }).missingProperty;
      return src.at(path, `missing required field "${formatPath([...path, field])}"`);
    }
    case 'const':
      if (where === 'apiVersion') return src.at(path, `apiVersion must be "${API_VERSION}" (got ${got})`);
      return src.at(path, `${prefix}must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)} (got ${got})`);
    case 'enum':
      return src.at(path, `${prefix}must be one of ${((e.params as { allowedValues: unknown[] }).allowedValues).join(', ')} (got ${got})`);
    case 'pattern':
      return src.at(path, `${prefix}${got} is not a valid ${title ?? `value (must match ${(e.params as { pattern: string }).pattern})`}`);
    case 'type': {
      const kind = e.data === null ? 'null' : Array.isArray(e.data) ? 'array' : typeof e.data;
      if (title) return src.at(path, `${prefix}must be a ${title} (got ${kind} ${got})`);
      const want = (e.params as { type: string }).type;
      // YAML reads `version: 2` or `enabled: yes`-style values as numbers and booleans.
      if (want === 'string' && (kind === 'number' || kind === 'boolean')) return src.at(path, `${prefix}must be string (got ${kind} ${got}; quote it: "${String(e.data)}")`);
      return src.at(path, `${prefix}must be ${want} (got ${kind})`);
    }
    case 'anyOf':
      return src.at(path, `${prefix}${got} is not a valid ${title ?? 'value'}`);
    default:
      return src.at(path, `${prefix}${e.message ?? 'is invalid'}`);
  }
}
