// A policy tree comes from a git repository, and git stores symbolic links: a pushed
// link to / made the control API walk the whole filesystem, and a link to a directory
// outside the repository had it read (and quote in diagnostics) files that are not
// policies. Links inside a tree are now reported and not followed; a path named on the
// command line is still followed (that is the user's choice).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyDir } from '../../agent/policy';

test('symbolic links inside a policy tree are reported at file:1:1 and not followed', () => {
  const base = mkdtempSync(join(tmpdir(), 'wt-sec-links-'));
  const outside = join(base, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.yaml'), 'kind: not-a-policy-but-a-secret-value\n');
  const tree = join(base, 'policies');
  mkdirSync(tree);
  writeFileSync(join(tree, 'svc.yaml'), 'apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {selector: {app: a}, ports: [{name: http, port: 80}]}\n');
  symlinkSync(outside, join(tree, 'escape'));
  symlinkSync(join(outside, 'secret.yaml'), join(tree, 'secret.yaml'));
  const r = loadPolicyDir([tree]);
  assert.deepEqual(r.files, [join(tree, 'svc.yaml')], 'only the regular file is read');
  assert.deepEqual(r.diagnostics.map((d) => `${d.file}:${d.line}:${d.col}: ${d.message}`), [
    `${tree}/escape:1:1: symbolic link inside a policy tree; not followed`,
    `${tree}/secret.yaml:1:1: symbolic link inside a policy tree; not followed`,
  ]);
  assert.ok(!JSON.stringify(r.diagnostics).includes('secret-value'));
  // Named on the command line, a link is followed.
  const named = loadPolicyDir([join(tree, 'secret.yaml')]);
  assert.equal(named.files.length, 1);
});
