// How a failed map or program operation is reported: WEFT_ERR_BPF naming what was being
// done, with the kernel's (libbpf's) error as the cause.
import { WeftError, describeError } from '../lib/errors';

export const bpfError = (what: string, cause: unknown) =>
  new WeftError('WEFT_ERR_BPF', `${what}: ${describeError(cause)}`, { cause });
