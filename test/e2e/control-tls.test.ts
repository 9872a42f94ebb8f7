// The real CLIs over TLS: `weft control` serves its mesh-CA certificate, `weft agent
// --control-ca` bootstraps with its token and, once it holds its node certificate,
// syncs authenticated by that certificate alone. A plaintext client gets nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requires } from '../lib/privileges';
import { startOneNodeMesh } from '../lib/mesh';
import { policyFile } from '../lib/policies';

const policies = (node: string) => policyFile(node, [
  { name: 'echo', vip: '10.96.0.10', port: 80, targetPort: 8080, protocol: 'HTTP', workloads: { 'echo-1': '10.250.0.11' } },
]);

test('agent: token first, then its node certificate authenticates the Sync stream', { timeout: 120_000 }, async (t) => {
  if (!requires(t, { bpffs: true, netns: true, cgroup2: true })) return;
  const mesh = await startOneNodeMesh('ctls', policies);
  t.after(() => mesh.close());

  // The control API saw the token first (bootstrap) and then the certificate.
  await mesh.control.waitForLog(new RegExp(`"node":"${mesh.node}".*"auth":"token","msg":"agent connected"`));
  await mesh.control.waitForLog(new RegExp(`"node":"${mesh.node}".*"auth":"certificate","msg":"agent connected"`));

  const agentStatus = async () => {
    const r = await mesh.ns.exec(['curl', '-sf', 'http://127.0.0.1:15020/v1/status']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { control: { connected: boolean; tls: boolean; auth: string } };
  };
  const deadline = Date.now() + 10_000;
  let s = await agentStatus();
  while (!(s.control.connected && s.control.auth === 'certificate') && Date.now() < deadline) {
    // The agent marks itself connected when the server's headers arrive, just after
    // the control API logged the stream: poll its status briefly (no event to await).
    await new Promise((r) => setTimeout(r, 100));
    s = await agentStatus();
  }
  assert.deepEqual({ connected: s.control.connected, tls: s.control.tls, auth: s.control.auth }, { connected: true, tls: true, auth: 'certificate' });

  // HTTP/2 in plaintext to the TLS port: no HTTP response at all (a plaintext gRPC
  // server would answer, with a status code, even when it then refuses the call).
  const plain = await mesh.ns.exec(['curl', '-s', '--max-time', '5', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:15010/weft.control.v1.Control/Status']);
  assert.equal(plain.stdout, '000', 'no HTTP response over plaintext');
  assert.notEqual(plain.code, 0, 'curl reports a protocol or connection failure');
});
