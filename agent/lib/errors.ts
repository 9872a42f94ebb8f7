// The one error catalogue of the agent and the control API. Every error thrown across a
// module boundary is a WeftError with a stable `code` that callers (and tests) branch on;
// messages are for people and may change.

export type WeftErrorCode =
  | 'WEFT_ERR_INVALID_ARG'     // a CLI flag, option or API argument is malformed
  | 'WEFT_ERR_INVALID_POLICY'  // a policy set failed validation (see diagnostics)
  | 'WEFT_ERR_INVALID_SERVICE' // a datapath service cannot be programmed into the maps
  | 'WEFT_ERR_CAPACITY'        // a map or table would overflow
  | 'WEFT_ERR_BPF'             // the kernel or libbpf refused an operation
  | 'WEFT_ERR_NOT_FOUND'       // a named object does not exist
  | 'WEFT_ERR_UNAVAILABLE'     // a peer (control API, agent, upstream) cannot be reached
  | 'WEFT_ERR_UNAUTHENTICATED' // missing or wrong credentials
  | 'WEFT_ERR_PERMISSION'      // authenticated but not allowed
  | 'WEFT_ERR_CONFLICT'        // the object exists with other contents (remove it first)
  | 'WEFT_ERR_TIMEOUT'         // an operation ran out of time
  | 'WEFT_ERR_IDENTITY'        // certificates, CSRs, trust bundles
  | 'WEFT_ERR_PROTOCOL'        // a peer broke a wire protocol
  | 'WEFT_ERR_INTERNAL';       // a bug: an invariant did not hold

export class WeftError extends Error {
  override readonly name = 'WeftError';
  readonly code: WeftErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: WeftErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options?.details) this.details = options.details;
  }
}

export function invalidArg(message: string, details?: Record<string, unknown>): WeftError {
  return new WeftError('WEFT_ERR_INVALID_ARG', message, details ? { details } : undefined);
}

export function isWeftError(e: unknown, code?: WeftErrorCode): e is WeftError {
  return e instanceof WeftError && (code === undefined || e.code === code);
}

/** A short, single-line description of any thrown value, for logs and CLI output. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' && !e.message.includes(code) ? `${e.message} (${code})` : e.message;
  }
  return String(e);
}
