// --control with several control API replicas: the gRPC target the sync client builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlTarget } from '../../agent/sync/client';
import { isWeftError } from '../../agent/lib/errors';

test('control address: one name as is, a list of replicas as an ipv4:/ipv6: target, bad lists refused', () => {
  assert.equal(controlTarget('weft-control.weft-system.svc:15010'), 'weft-control.weft-system.svc:15010');
  assert.equal(controlTarget('10.0.0.1:15010, 10.0.0.2:15010'), 'ipv4:10.0.0.1:15010,10.0.0.2:15010');
  assert.equal(controlTarget('[fd00::1]:15010,[fd00::2]:15011'), 'ipv6:[fd00::1]:15010,[fd00::2]:15011');
  for (const bad of ['a.example:1,b.example:2', '10.0.0.1:15010,[fd00::1]:15010', '10.0.0.1:0,10.0.0.2:1', '10.0.0.1,10.0.0.2:1', '10.0.0.1:15010,']) {
    assert.throws(() => controlTarget(bad), (e: unknown) => isWeftError(e, 'WEFT_ERR_INVALID_ARG'), bad);
  }
});
