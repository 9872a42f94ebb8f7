// Rebuilds a message head when a route edits headers (or tracing replaces traceparent).
// Only taken when configured: the plain path forwards the received head bytes as-is.
import { RequestHead, type MessageHead } from './head-parser';
import type { HeaderEdits } from '../routing/table';

/** `edits` applied to the head, `traceparent` replaced; a request's start line is its
 *  `newLine` when the proxy changed the target (normalized path). */
export function rewriteHead(h: MessageHead, edits: HeaderEdits | null, traceparent: string | null): Buffer {
  const b = h.buf, o = h.offsets;
  const line = h instanceof RequestHead ? h.newLine : null;
  let out = line !== null ? line + '\r\n' : b.toString('latin1', 0, h.headersStart);
  for (let i = 0; i < h.count; i++) {
    const name = h.nameAt(i);
    if (traceparent !== null && name === 'traceparent') continue;
    if (edits !== null && (edits.remove.includes(name) || edits.set.some((s) => s.name === name))) continue;
    out += b.toString('latin1', o[i * 4]!, o[i * 4 + 3]!) + '\r\n';
  }
  if (edits !== null) {
    for (const s of edits.set) out += `${s.name}: ${s.value}\r\n`;
    for (const a of edits.add) out += `${a.name}: ${a.value}\r\n`;
  }
  if (traceparent !== null) out += `traceparent: ${traceparent}\r\n`;
  return Buffer.from(out + '\r\n', 'latin1');
}
