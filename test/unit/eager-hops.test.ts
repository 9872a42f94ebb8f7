// Which same-node hops the agent asks the kernel to splice from their first connection.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { eagerHops } from '../../agent/node/agent';
import type { NodeView } from '../../agent/policy/snapshot';

const ep = (workload: string, node: string, address: string, port: number) => ({ workload, node, address, ports: { http: port }, namespace: 'shop', serviceAccount: workload, identity: '', labels: {}, weight: 1 });

test('eager hops: the outbound listener and this node\'s endpoints of redirected services only', () => {
  const view = {
    node: 'n1',
    services: [
      { key: 'shop/web', endpoints: [ep('web-0', 'n1', '10.0.0.11', 8080), ep('web-1', 'n2', '10.0.1.11', 8080)] },
      { key: 'shop/db', endpoints: [ep('db-0', 'n1', '10.0.0.12', 5432)] },
    ],
    datapath: [
      { mode: 'redirect', service: 'shop/web', portName: 'http' },
      { mode: 'l4', service: 'shop/db', portName: 'http' },
      { mode: 'redirect', service: 'shop/gone', portName: 'http' },
    ],
  } as unknown as NodeView;
  assert.deepEqual(eagerHops(view, { host: '127.0.0.1', port: 15001 }), [
    { ip: '127.0.0.1', port: 15001 }, { ip: '10.0.0.11', port: 8080 },
  ]);
  // A wildcard listener is no endpoint a client connects to.
  assert.deepEqual(eagerHops(view, { host: '0.0.0.0', port: 15001 }), [{ ip: '10.0.0.11', port: 8080 }]);
});
