// A tiny typed JSON Schema builder. Each policy kind is written once, with these
// functions, as a value that is both a JSON Schema (draft-07, what ajv and editors read)
// and, through `Static<>`, the TypeScript type of the parsed object. That is how the
// schema files and the TS types cannot drift: `npm run schema:gen` writes
// policies/schema/*.json from these values, and test/unit/policy-schema.test.ts fails when
// the committed files differ from what the generator produces. (TypeBox does the same at
// a larger scale; we need only the handful of shapes below.)

export type JsonSchema = Record<string, unknown>;

/** A schema that carries the TypeScript type T of the values it accepts. */
export interface TSchema<T> {
  readonly schema: JsonSchema;
  /** Phantom: never set at runtime, only used by Static<>. */
  readonly __type?: T;
  readonly optional?: false;
}
/** An object property that may be absent. */
export interface TOptional<T> {
  readonly schema: JsonSchema;
  readonly __type?: T;
  readonly optional: true;
}

export type Static<S> = S extends { __type?: infer T } ? T : never;

type AnyProp = TSchema<unknown> | TOptional<unknown>;
type Props = Record<string, AnyProp>;
type RequiredKeys<P extends Props> = { [K in keyof P]: P[K] extends TOptional<unknown> ? never : K }[keyof P];
type OptionalKeys<P extends Props> = Exclude<keyof P, RequiredKeys<P>>;
type Flatten<T> = { [K in keyof T]: T[K] };
export type ObjectOf<P extends Props> = Flatten<
  { [K in RequiredKeys<P>]: Static<P[K]> } & { [K in OptionalKeys<P>]?: Static<P[K]> }
>;

/** `title` names a string format in error messages ("is not a valid duration ..."). */
interface Doc { description?: string; title?: string }

function make<T>(schema: JsonSchema): TSchema<T> {
  return { schema };
}

export function optional<T>(s: TSchema<T>): TOptional<T> {
  return { schema: s.schema, optional: true };
}

export function string(opts: Doc & { pattern?: string; minLength?: number; maxLength?: number; format?: string } = {}): TSchema<string> {
  return make({ type: 'string', ...opts });
}

export function literal<const V extends readonly string[]>(values: V, opts: Doc = {}): TSchema<V[number]> {
  return make(values.length === 1 ? { const: values[0], ...opts } : { enum: [...values], ...opts });
}

export function integer(opts: Doc & { minimum?: number; maximum?: number } = {}): TSchema<number> {
  return make({ type: 'integer', ...opts });
}

export function number(opts: Doc & { minimum?: number; maximum?: number } = {}): TSchema<number> {
  return make({ type: 'number', ...opts });
}

export function boolean(opts: Doc = {}): TSchema<boolean> {
  return make({ type: 'boolean', ...opts });
}

export function array<T>(item: TSchema<T>, opts: Doc & { minItems?: number; maxItems?: number } = {}): TSchema<T[]> {
  return make({ type: 'array', items: item.schema, ...opts });
}

/** A closed object: unknown fields are errors (typos must not be silently ignored). */
export function object<P extends Props>(props: P, opts: Doc & { minProperties?: number } = {}): TSchema<ObjectOf<P>> {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [k, v] of Object.entries(props)) {
    properties[k] = v.schema;
    if (!v.optional) required.push(k);
  }
  return make({
    type: 'object',
    ...opts,
    properties,
    ...(required.length ? { required } : {}),
    additionalProperties: false,
  });
}

/** A map with string keys (labels, selectors). */
export function record<T>(value: TSchema<T>, opts: Doc & { propertyNames?: JsonSchema } = {}): TSchema<Record<string, T>> {
  return make({ type: 'object', additionalProperties: value.schema, ...opts });
}

/** Accepts either schema (e.g. a port given as a number or a name). */
export function union<A, B>(a: TSchema<A>, b: TSchema<B>, opts: Doc = {}): TSchema<A | B> {
  return make({ anyOf: [a.schema, b.schema], ...opts });
}
