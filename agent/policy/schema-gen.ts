// Writes policies/schema/<kind>.json from the kind definitions in kinds.ts
// (`npm run schema:gen`). The committed files are what editors (yaml-language-server)
// and CI read; test/unit/policy-schema.test.ts fails when they differ from
// generateSchemaFiles(), so a change to kinds.ts without regenerating cannot be merged.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KINDS, kindSchemas, type Kind } from './kinds';
import { packageRoot } from '../lib/paths';

export function schemaFileName(kind: Kind): string {
  return `${kind.toLowerCase()}.json`;
}

const BASE = 'https://weft.dev/schema/v1alpha1/';
const DRAFT = 'http://json-schema.org/draft-07/schema#';

/** File name → file content: one schema per kind, plus policy.json, which dispatches on
 *  `kind` so an editor can check a file that mixes kinds (point yaml-language-server's
 *  `# yaml-language-server: $schema=…/policies/schema/policy.json` at it). */
export function generateSchemaFiles(): Record<string, string> {
  const out: Record<string, string> = {};
  const json = (doc: object) => JSON.stringify(doc, null, 2) + '\n';
  for (const [kind, s] of Object.entries(kindSchemas) as [Kind, { schema: object }][]) {
    out[schemaFileName(kind)] = json({ $schema: DRAFT, $id: BASE + schemaFileName(kind), title: kind, ...s.schema });
  }
  out['policy.json'] = json({
    $schema: DRAFT,
    $id: `${BASE}policy.json`,
    title: 'weft policy document',
    type: 'object',
    required: ['kind'],
    properties: { kind: { enum: KINDS } },
    allOf: KINDS.map((k) => ({ if: { properties: { kind: { const: k } }, required: ['kind'] }, then: { $ref: schemaFileName(k) } })),
  });
  return out;
}

export function schemaDir(): string {
  return join(packageRoot(), 'policies', 'schema');
}

if (require.main === module) {
  mkdirSync(schemaDir(), { recursive: true });
  for (const [name, text] of Object.entries(generateSchemaFiles())) writeFileSync(join(schemaDir(), name), text);
  process.stdout.write(`wrote ${Object.keys(generateSchemaFiles()).length} schemas to ${schemaDir()}\n`);
}
