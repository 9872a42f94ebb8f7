// gRPC handlers fail calls with {code, details} (as grpc-js's own servers do). One helper
// so every handler maps errors the same way, including WeftErrors thrown by the modules
// they call (policy compiler, CA).
import { status, Metadata, type ServiceError } from '@grpc/grpc-js';
import { isWeftError, describeError, type WeftErrorCode } from '../lib/errors';

export function rpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new Metadata() });
}

const BY_WEFT_CODE: Partial<Record<WeftErrorCode, status>> = {
  WEFT_ERR_INVALID_ARG: status.INVALID_ARGUMENT,
  WEFT_ERR_INVALID_POLICY: status.INVALID_ARGUMENT,
  WEFT_ERR_IDENTITY: status.INVALID_ARGUMENT,
  WEFT_ERR_NOT_FOUND: status.NOT_FOUND,
  WEFT_ERR_UNAUTHENTICATED: status.UNAUTHENTICATED,
  WEFT_ERR_PERMISSION: status.PERMISSION_DENIED,
  WEFT_ERR_CONFLICT: status.ALREADY_EXISTS,
  WEFT_ERR_CAPACITY: status.RESOURCE_EXHAUSTED,
  WEFT_ERR_UNAVAILABLE: status.UNAVAILABLE,
  WEFT_ERR_TIMEOUT: status.DEADLINE_EXCEEDED,
};

/** Any thrown value as a gRPC error: WeftErrors keep their meaning, the rest is INTERNAL. */
export function toRpcError(e: unknown): ServiceError {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof (e as ServiceError).code === 'number' && 'details' in e) return e as ServiceError;
  const code = isWeftError(e) ? BY_WEFT_CODE[e.code] ?? status.INTERNAL : status.INTERNAL;
  return rpcError(code, describeError(e));
}
