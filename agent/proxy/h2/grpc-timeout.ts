// grpc-timeout header (gRPC over HTTP/2 spec): up to 8 digits and a unit
// H(ours) M(inutes) S(econds) m(illis) u(micros) n(anos).
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** Milliseconds, or -1 when absent or malformed (a malformed timeout is ignored). */
export function parseGrpcTimeout(v: string | string[] | undefined): number {
  if (typeof v !== 'string' || v.length < 2 || v.length > 9) return -1;
  const unit = UNIT_MS[v[v.length - 1]!];
  const digits = v.slice(0, -1);
  if (unit === undefined || !/^[0-9]+$/.test(digits)) return -1;
  return Math.ceil(Number(digits) * unit);
}
