// The node view as named resources (delta sync) and the parsed-file cache: the resources
// reassemble into exactly forNode()'s view, a one-endpoint change touches one service
// resource per node, a merge is all-or-nothing, and a reload with the cache reports the
// same diagnostics as a cold load while re-parsing only the edited file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { compile, forNode, loadPolicyDir, ParsedFileCache, type Snapshot } from '../../agent/policy';
import { ViewResourceCache } from '../../agent/policy/view-cache';
import { NODE_RESOURCE, resourceSetDigest } from '../../agent/policy/view-resources';
import { mergeDelta, type HeldResource } from '../../agent/sync/resource-set';
import { isWeftError } from '../../agent/lib/errors';
import { packageRoot } from '../../agent/lib/paths';
import { writeMesh, nodeWorkloadsYaml, nodeName, type MeshShape } from '../bench/control-fixture';

const SHAPE: MeshShape = { services: 30, endpoints: 300, nodes: 5 };

function meshDir(t: TestContext, shape: MeshShape = SHAPE): string {
  const dir = mkdtempSync(join(tmpdir(), 'wt-viewres-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeMesh(dir, shape);
  return dir;
}

/** All of a node's resources as the agent would receive them on first sync. */
function received(views: ViewResourceCache, node: string) {
  return [...views.resources(node)].map(([name, r]) => ({ name, version: r.version, body: r.body() }));
}

function versions(views: ViewResourceCache, node: string): Map<string, string> {
  return new Map([...views.resources(node)].map(([k, r]) => [k, r.version]));
}

test('the resources a node is sent reassemble into exactly forNode()\'s view', (t) => {
  for (const [dir, nodes] of [[join(packageRoot(), 'policies'), ['node-1', 'node-2', 'node-9']], [meshDir(t), [nodeName(0), nodeName(4)]]] as const) {
    const snap = compile(loadPolicyDir([dir]), [], { now: new Date(0) });
    const views = new ViewResourceCache();
    views.setSnapshot(snap);
    for (const node of nodes) {
      const { view, resources } = mergeDelta(new Map(), snap.version, node, received(views, node), []);
      assert.equal(JSON.stringify(view), JSON.stringify(forNode(snap, node)), `${dir} ${node}`);
      assert.equal(resources.size, snap.services.length + 1);
    }
  }
});

test('a one-endpoint change touches one service resource per node (and the node resource of its node)', (t) => {
  const dir = meshDir(t);
  const a = compile(loadPolicyDir([dir]), []);
  const views = new ViewResourceCache();
  views.setSnapshot(a);
  const before = Array.from({ length: SHAPE.nodes }, (_, n) => versions(views, nodeName(n)));
  // Recompiling unchanged input changes no resource version.
  views.setSnapshot(compile(loadPolicyDir([dir]), [], { previous: a }));
  for (let n = 0; n < SHAPE.nodes; n++) assert.deepEqual(versions(views, nodeName(n)), before[n]);

  writeFileSync(join(dir, `workloads-${nodeName(2)}.yaml`), nodeWorkloadsYaml(SHAPE, 2, 5));
  const b = compile(loadPolicyDir([dir]), [], { previous: a });
  views.setSnapshot(b);
  const changedSvc = b.services.find((s) => s.endpoints.some((e) => e.weight === 6))!.key;
  for (let n = 0; n < SHAPE.nodes; n++) {
    const now = versions(views, nodeName(n));
    const changed = [...now].filter(([k, v]) => before[n]!.get(k) !== v).map(([k]) => k).sort();
    assert.deepEqual(changed, n === 2 ? [NODE_RESOURCE, `service/${changedSvc}`] : [`service/${changedSvc}`], nodeName(n));
  }
});

function held(snap: Snapshot, node: string): Map<string, HeldResource> {
  const views = new ViewResourceCache();
  views.setSnapshot(snap);
  return mergeDelta(new Map(), snap.version, node, received(views, node), []).resources;
}

test('a delta merges all-or-nothing: any bad resource refuses the whole delta and changes nothing', (t) => {
  const snap = compile(loadPolicyDir([meshDir(t)]), []);
  const node = nodeName(1);
  const base = held(snap, node);
  const copy = new Map(base);
  const svcName = [...base.keys()].find((k) => k !== NODE_RESOURCE)!;
  const good = { name: svcName, version: 'v2', body: Buffer.from(base.get(svcName)!.json) };
  const bad: [string, Parameters<typeof mergeDelta>[3], string[]][] = [
    ['not JSON', [good, { name: 'service/bench/svc-1', version: 'x', body: Buffer.from('{') }], []],
    ['wrong node', [good, { name: NODE_RESOURCE, version: 'x', body: Buffer.from(JSON.stringify({ ...(base.get(NODE_RESOURCE)!.value as object), node: 'other' })) }], []],
    ['name does not match the service', [{ name: 'service/bench/other', version: 'x', body: good.body }], []],
    ['unknown resource kind', [{ name: 'routes/x', version: 'x', body: Buffer.from('{}') }], []],
    ['no version', [{ ...good, version: '' }], []],
    ['removes what it does not hold', [good], ['service/bench/nope']],
    ['removes the node resource', [good], [NODE_RESOURCE]],
  ];
  for (const [what, changed, removed] of bad) {
    assert.throws(() => mergeDelta(base, 'v2', node, changed, removed), (e: unknown) => isWeftError(e, 'WEFT_ERR_PROTOCOL'), what);
    assert.deepEqual(base, copy, `${what}: held resources untouched`);
  }
  const ok = mergeDelta(base, 'v2', node, [good], [svcName === 'service/bench/svc-0' ? 'service/bench/svc-1' : 'service/bench/svc-0']);
  assert.equal(ok.resources.size, base.size - 1);
  assert.equal(ok.resources.get(svcName)!.version, 'v2');
  assert.equal(ok.view.services.length, snap.services.length - 1);
  assert.deepEqual(base, copy, 'a successful merge builds a new set');
});

test('the parsed-file cache re-parses only edited files and reports exactly what a cold load reports', (t) => {
  const dir = meshDir(t);
  const cache = new ParsedFileCache();
  const first = loadPolicyDir([dir], [], cache);
  assert.deepEqual(first.diagnostics, []);
  const file = join(dir, `workloads-${nodeName(3)}.yaml`);
  writeFileSync(file, nodeWorkloadsYaml(SHAPE, 3, 1));
  const second = loadPolicyDir([dir], [], cache);
  const fromEdited = (r: typeof first) => r.objects.filter((o) => o.source.file === file);
  const others = (r: typeof first) => r.objects.filter((o) => o.source.file !== file);
  assert.ok(others(second).every((o, i) => o === others(first)[i]), 'unchanged files keep their parsed objects');
  assert.ok(fromEdited(second).every((o, i) => o !== fromEdited(first)[i]), 'the edited file is parsed again');
  assert.equal(compile(second).version, compile(loadPolicyDir([dir])).version);

  // A broken edit: the same diagnostics (file:line:col) as without the cache.
  writeFileSync(file, `${nodeWorkloadsYaml(SHAPE, 3)}---\napiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {name: w-0, namespace: bench}\nspec: {address: 10.100.0.0, node: x, bogus: 1}\n`);
  const broken = loadPolicyDir([dir], [], cache);
  assert.ok(broken.diagnostics.length > 0);
  assert.deepEqual(broken.diagnostics, loadPolicyDir([dir]).diagnostics);

  // A deleted file is forgotten, and its objects are gone.
  unlinkSync(file);
  const third = loadPolicyDir([dir], [], cache);
  assert.equal(fromEdited(third).length, 0);
  assert.deepEqual(third.diagnostics, loadPolicyDir([dir]).diagnostics);
});

test('views are shared: a node holds overrides only for the services it hosts; deltaFrom() equals the resource-by-resource difference', (t) => {
  const shape: MeshShape = { services: 40, endpoints: 40, nodes: 5 };
  const dir = meshDir(t, shape);
  const a = compile(loadPolicyDir([dir]), []);
  const views = new ViewResourceCache();
  views.setSnapshot(a);
  const old = Array.from({ length: shape.nodes }, (_, n) => views.resources(nodeName(n)));
  // Every node's service resources for services it hosts no endpoint of are the same
  // objects (one zone layer), its own ones are not.
  const hosts = (node: string, name: string) => a.services.some((s) => `service/${s.key}` === name && s.endpoints.some((e) => e.node === node));
  let shared = 0, own = 0;
  for (const [name, r] of old[0]!) {
    if (name === NODE_RESOURCE) continue;
    if (hosts(nodeName(0), name)) { own++; assert.equal(old[0]!.override(name), r); } else { shared++; assert.equal(old[1]!.get(name) === r || hosts(nodeName(1), name), true); }
  }
  assert.ok(shared > 0 && own > 0, `${shared} shared, ${own} own`);

  writeFileSync(join(dir, `workloads-${nodeName(2)}.yaml`), nodeWorkloadsYaml(shape, 2, 7));
  writeFileSync(join(dir, 'extra.yaml'), `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: extra, namespace: bench}
spec:
  vip: 10.96.99.1
  selector: {app: svc-1}
  ports:
    - {name: p, port: 80, targetPort: 8080, protocol: TCP}
`);
  const b = compile(loadPolicyDir([dir]), [], { previous: a });
  views.setSnapshot(b);
  for (let n = 0; n < shape.nodes; n++) {
    const cur = views.resources(nodeName(n));
    const brute = [...cur].filter(([name, r]) => old[n]!.get(name)?.version !== r.version).map(([name]) => name).sort();
    const d = cur.deltaFrom(old[n]!);
    assert.deepEqual(d.changed.map(([name]) => name).sort(), brute, nodeName(n));
    assert.deepEqual(d.removed, [...old[n]!.keys()].filter((k) => !cur.has(k)));
    // Sending the delta to an agent that holds the old view gives it exactly the new view.
    const held = new Map<string, HeldResource>();
    const base = mergeDelta(held, a.version, nodeName(n), [...old[n]!].map(([name, r]) => ({ name, version: r.version, body: r.body() })), []);
    const next = mergeDelta(base.resources, b.version, nodeName(n), d.changed.map(([name, r]) => ({ name, version: r.version, body: r.body() })), d.removed);
    assert.equal(JSON.stringify(next.view), JSON.stringify(forNode(b, nodeName(n))));
  }
  unlinkSync(join(dir, 'extra.yaml'));
});

test('a view\'s digest is resourceSetDigest of its resources, before and after a change, for nodes with and without overrides', (t) => {
  const dir = meshDir(t);
  const views = new ViewResourceCache();
  const check = () => {
    for (const node of [nodeName(0), nodeName(3), 'node-without-workloads']) {
      const v = views.resources(node);
      assert.equal(v.digest(), resourceSetDigest([...v].map(([name, r]) => [name, r.version] as const)), node);
    }
  };
  const first = compile(loadPolicyDir([dir]), [], { now: new Date(0) });
  views.setSnapshot(first);
  check();
  const before = views.resources(nodeName(0)).digest();
  writeFileSync(join(dir, `workloads-${nodeName(1)}.yaml`), nodeWorkloadsYaml(SHAPE, 1, 5));
  views.setSnapshot(compile(loadPolicyDir([dir]), [], { now: new Date(0), previous: first }));
  check();
  assert.notEqual(views.resources(nodeName(0)).digest(), before);
});
