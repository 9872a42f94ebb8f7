// The JSON Schemas under policies/schema are generated from kinds.ts (the single
// definition of every kind, which also yields the TypeScript types). This test is what
// keeps the committed files from drifting: run `npm run schema:gen` after editing kinds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { parseAllDocuments } from 'yaml';
import { generateSchemaFiles, schemaDir } from '../../agent/policy/schema-gen';
import { packageRoot } from '../../agent/lib/paths';

test('committed policies/schema/*.json equal what schema-gen produces', () => {
  const generated = generateSchemaFiles();
  const committed = readdirSync(schemaDir()).filter((f) => f.endsWith('.json')).sort();
  assert.deepEqual(committed, Object.keys(generated).sort(), 'schema file set differs: run npm run schema:gen');
  for (const [name, text] of Object.entries(generated)) {
    assert.equal(readFileSync(join(schemaDir(), name), 'utf8'), text, `${name} is stale: run npm run schema:gen`);
  }
});

test('the example policies satisfy the committed schema files (what editors see)', () => {
  const ajv = new Ajv({ allErrors: true, strict: true });
  for (const f of readdirSync(schemaDir())) ajv.addSchema(JSON.parse(readFileSync(join(schemaDir(), f), 'utf8')));
  const byKind = new Map<string, ReturnType<Ajv['compile']>>();
  for (const f of readdirSync(schemaDir())) {
    const s = JSON.parse(readFileSync(join(schemaDir(), f), 'utf8')) as { title: string; $id: string };
    byKind.set(s.title, ajv.getSchema(s.$id) as ReturnType<Ajv['compile']>);
  }
  const any = byKind.get('weft policy document');
  assert.ok(any);
  const dir = join(packageRoot(), 'policies', 'shop');
  let n = 0;
  for (const f of readdirSync(dir)) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      const v = doc.toJS() as { kind: string };
      const validate = byKind.get(v.kind);
      assert.ok(validate, `${f}: no schema for ${v.kind}`);
      assert.ok(validate(v), `${f}: ${JSON.stringify(validate.errors)}`);
      assert.ok(any(v), `${f} (policy.json): ${JSON.stringify(any.errors)}`);
      assert.equal(any({ ...v, metadata: { name: 'UPPER' } }), false, 'policy.json dispatches to the kind schema');
      n++;
    }
  }
  assert.ok(n >= 10);
});

test('a schema rejects an unknown field (objects are closed)', () => {
  const svc = JSON.parse(readFileSync(join(schemaDir(), 'service.json'), 'utf8'));
  const validate = new Ajv({ strict: true }).compile(svc);
  const ok = { apiVersion: 'weft.dev/v1alpha1', kind: 'Service', metadata: { name: 'a' }, spec: { selector: {}, ports: [{ name: 'p', port: 1 }] } };
  assert.equal(validate(ok), true);
  assert.equal(validate({ ...ok, spec: { ...ok.spec, extra: 1 } }), false);
});
