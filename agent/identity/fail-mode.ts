// MeshConfig failMode, decided here for userspace: what happens to a connection that must
// use mTLS when there is no valid identity to present (no certificate yet, expired, or
// no tunnel because the node has none). 'open' logs and lets the caller go without mTLS
// (only meaningful toward PERMISSIVE destinations; STRICT ones refuse it); 'closed'
// refuses with WEFT_ERR_IDENTITY. The kernel's own copy of the mode (weft_node_cfg, for
// redirect-mode connects when no agent listens) is set by the datapath.
import { WeftError } from '../lib/errors';
import type { FailMode } from '../policy/snapshot';
import type { Logger } from '../telemetry/logger';

/** Returns when the mesh fails open (after a warning), throws WEFT_ERR_IDENTITY with
 *  `why` when it fails closed. `fields` go to the warning and the error's details. */
export function failWithoutIdentity(failMode: FailMode, log: Logger, why: string, fields?: Record<string, unknown>): void {
  if (failMode === 'open') {
    log.warn({ ...fields, reason: why }, 'no valid certificate; failing open');
    return;
  }
  throw new WeftError('WEFT_ERR_IDENTITY', why, fields ? { details: fields } : undefined);
}
