// Writes policies/schema/<kind>.json from the kind definitions in kinds.ts
// (`npm run schema:gen`). The committed files are what editors (yaml-language-server)
// and CI read; test/unit/policy-schema.test.ts fails when they differ from
// generateSchemaFiles(), so a change to kinds.ts without regenerating cannot be merged.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kindSchemas, type Kind } from './kinds';
import { packageRoot } from '../lib/paths';

export function schemaFileName(kind: Kind): string {
  return `${kind.toLowerCase()}.json`;
}

/** File name → file content, for every kind. */
export function generateSchemaFiles(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [kind, s] of Object.entries(kindSchemas) as [Kind, { schema: object }][]) {
    const doc = { $schema: 'http://json-schema.org/draft-07/schema#', $id: `https://weft.dev/schema/v1alpha1/${schemaFileName(kind)}`, title: kind, ...s.schema };
    out[schemaFileName(kind)] = JSON.stringify(doc, null, 2) + '\n';
  }
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
