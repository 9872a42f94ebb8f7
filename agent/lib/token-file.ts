// Reading secret token files: the node bootstrap token (weft agent --token-file) and
// the agent's admin token (weft run --admin-token-file, STATE_DIR/admin-token).
import { readFileSync } from 'node:fs';
import { describeError, invalidArg } from './errors';

/** The token in `file`, trimmed. `what` names it in errors (a flag or a description);
 *  an unreadable or empty file is a clear WEFT_ERR_INVALID_ARG. */
export function readTokenFile(file: string, what: string): string {
  let token: string;
  try { token = readFileSync(file, 'utf8').trim(); } catch (e) { throw invalidArg(`${what}: cannot read ${file}: ${describeError(e)}`); }
  if (!token) throw invalidArg(`${what}: ${file} is empty`);
  return token;
}
