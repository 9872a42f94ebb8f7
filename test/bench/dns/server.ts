// bench:dns's DNS server: the agent's own DnsServer, MeshResolver and Forwarder (no
// mocks), with SERVICES mesh names, on HOST:PORT, forwarding to UPSTREAM. Run inside the
// bench's network namespace, outside the workloads cgroup (as the agent is).
import { DnsServer } from '../../../agent/dns/server';
import { MeshResolver } from '../../../agent/dns/resolver';
import { NameTable } from '../../../agent/dns/table';
import { Forwarder, parseUpstream } from '../../../agent/dns/upstream';

const [host, port, upstream, services] = process.argv.slice(2);
const n = Number(services);
const table = new NameTable(Array.from({ length: n }, (_, i) => ({
  name: `svc-${i}`, namespace: `ns-${i % 50}`, vip: `10.96.${i >> 8}.${i & 255}`,
  ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' as const }],
})).concat([{ name: 'catalog', namespace: 'shop', vip: '10.96.200.20', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' as const }] }]));
const server = new DnsServer({ host: host!, port: Number(port), resolver: new MeshResolver(table), forwarder: new Forwarder([parseUpstream(upstream!)]) });
server.listen().then(() => process.stdout.write(`ready ${table.size}\n`), (e) => { process.stderr.write(`${String(e)}\n`); process.exit(1); });
