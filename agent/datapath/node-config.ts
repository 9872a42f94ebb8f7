// weft_cfg_v1: the node's mesh settings the kernel reads — the fail mode for
// redirect-mode connects while no agent listens, and the mTLS mode the STRICT ingress
// hook enforces. Pinned, so they hold while the agent is down.
import { WeftError } from '../lib/errors';
import { FAIL_MODES, MTLS_MODES, nodeCfgCodec, type FailMode, type MtlsMode, type NodeCfg } from './codec';
import type { DatapathMaps } from './maps';

/** `value` if it names an entry of `table` (a codec's name → number table), else WEFT_ERR_INVALID_ARG. */
export function oneOf<K extends string>(table: Record<K, number>, value: K, what: string): K {
  if (!Object.hasOwn(table, value)) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `${what} ${JSON.stringify(value)} is not one of ${Object.keys(table).join(', ')}`);
  }
  return value;
}

export class NodeConfig {
  constructor(private readonly cfg: DatapathMaps['cfg']) {}

  /**
   * What redirect-mode (L7/mTLS) services do while no agent process listens on the
   * redirect target (MeshConfig failMode; the kernel checks for the listener at every
   * such connect): 'closed' refuses with ECONNREFUSED, 'open' balances the connection
   * over the service's backends in the kernel, without L7 policy or mTLS. A fresh node
   * is 'closed'.
   */
  setFailMode(mode: FailMode): void {
    this.update({ failMode: oneOf(FAIL_MODES, mode, 'fail mode') });
  }

  /**
   * MeshConfig mTLS mode, enforced by bpf/ingress.bpf.c on the workloads cgroup: under
   * 'STRICT' a connection to a mesh workload must come from this node (its agent after
   * mTLS, or a local workload); plaintext from outside is dropped at the SYN. A fresh
   * node is 'PERMISSIVE' until the first snapshot says otherwise. `strictHooks` attaches
   * (true) or detaches (false) the ingress hook: it goes in before the mode flips (it
   * passes everything until then) and comes out after, so enforcement starts and stops
   * with the map update.
   */
  setMtlsMode(mode: MtlsMode, strictHooks: (on: boolean) => void): void {
    const mtls = oneOf(MTLS_MODES, mode, 'mTLS mode');
    if (mtls === 'STRICT') strictHooks(true);
    this.update({ mtls });
    if (mtls !== 'STRICT') strictHooks(false);
  }

  read(): NodeCfg {
    const v = this.cfg.lookup(Buffer.alloc(4));
    return v ? nodeCfgCodec.decode(v) : { failMode: 'closed', mtls: 'PERMISSIVE' };
  }

  private update(change: Partial<NodeCfg>): void {
    this.cfg.update(Buffer.alloc(4), nodeCfgCodec.encode({ ...this.read(), ...change }));
  }
}
