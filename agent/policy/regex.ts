// Regular expressions in policies (HTTPRoute path/header/query matches, GRPCRoute method
// matches) run against what a client sends, so they run on an engine with RE2 semantics
// (re2js, a pure-JS port of RE2): matching is linear in the input, whatever the pattern.
// A backtracking engine (JavaScript's RegExp) can take exponential time on a pattern like
// `(a+)+$` and one crafted header, which freezes a proxy worker.
//
// Semantics: a policy regex must match the whole value (as Envoy's safe_regex and the
// Gateway API's RegularExpression): the pattern is compiled as ^(?:PATTERN)$. The syntax
// is RE2's (https://github.com/google/re2/wiki/Syntax): no backreferences, no lookahead
// or lookbehind, repetition counts at most 1000. Validation and the proxy both compile
// through compilePolicyRegex(), so whatever `weft validate` accepts the proxy runs.
import { RE2JS } from 're2js';

/** Longest pattern accepted (Gateway API caps path values at 1024 characters too). */
export const MAX_REGEX_LENGTH = 1024;
/** Upper bound on the compiled program (RE2's own rough measure of a pattern's cost):
 *  bounds the memory and the per-character work of one match. */
export const MAX_REGEX_PROGRAM = 20_000;

/** A compiled policy regex: whole-value match, linear time. */
export interface PolicyRegex {
  readonly source: string;
  test(value: string): boolean;
}

class Re2Matcher implements PolicyRegex {
  constructor(readonly source: string, private readonly re: RE2JS) {}
  test(value: string): boolean { return this.re.test(value); }
}

/** Constructs RE2 leaves out that JavaScript and PCRE users reach for; named so the
 *  message says what to change instead of RE2's terser parse error. */
function unsupported(src: string): string | undefined {
  // Skip escaped characters and character classes, where "(?=" or "\1" mean nothing.
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') {
      const n = src[i + 1];
      if (!inClass && n !== undefined && n >= '1' && n <= '9') return `backreferences (\\${n}) are not supported`;
      if (!inClass && n === 'k' && src[i + 2] === '<') return 'named backreferences (\\k<name>) are not supported';
      i++;
      continue;
    }
    if (inClass) { if (c === ']') inClass = false; continue; }
    if (c === '[') { inClass = true; if (src[i + 1] === ']') i++; else if (src[i + 1] === '^' && src[i + 2] === ']') i += 2; continue; }
    if (c === '(' && src[i + 1] === '?') {
      const a = src[i + 2], b = src[i + 3];
      if (a === '=' ) return 'lookahead (?=...) is not supported';
      if (a === '!') return 'negative lookahead (?!...) is not supported';
      if (a === '<' && b === '=') return 'lookbehind (?<=...) is not supported';
      if (a === '<' && b === '!') return 'negative lookbehind (?<!...) is not supported';
      if (a === '>') return 'atomic groups (?>...) are not supported';
    }
    if ((c === '+' || c === '*' || c === '?' || c === '}') && src[i + 1] === '+') return `possessive quantifiers (${c}+) are not supported`;
  }
  return undefined;
}

/** Compiles a policy regex, or says why it cannot (a sentence without the pattern). */
export function compilePolicyRegex(src: string): { regex: PolicyRegex } | { error: string } {
  if (src.length > MAX_REGEX_LENGTH) return { error: `longer than ${MAX_REGEX_LENGTH} characters (${src.length})` };
  const why = unsupported(src);
  if (why) return { error: `${why} (RE2 syntax: matching must stay linear in the input)` };
  const parseError = (e: unknown) => ({
    // "error parsing regexp: missing closing ): `(abc`" → "missing closing ) (RE2 syntax)"
    error: `${String((e as Error)?.message ?? e).replace(/^error parsing regexp: /, '').replace(/: `[\s\S]*`$/, '')} (RE2 syntax)`,
  });
  // The pattern alone first: wrapped, "a)|(b" would parse (it closes our group).
  try { RE2JS.compile(src); } catch (e) { return parseError(e); }
  let re: RE2JS;
  try { re = RE2JS.compile(`^(?:${src})$`); } catch (e) { return parseError(e); }
  const size = re.programSize();
  if (size > MAX_REGEX_PROGRAM) return { error: `too complex (compiled size ${size}, at most ${MAX_REGEX_PROGRAM}); use fewer or smaller repetition counts` };
  return { regex: new Re2Matcher(src, re) };
}

/** Whole-value match of `src` against `value`; false for a pattern that does not compile. */
export function policyRegexMatches(src: string, value: string): boolean {
  const r = compilePolicyRegex(src);
  return 'regex' in r && r.regex.test(value);
}
