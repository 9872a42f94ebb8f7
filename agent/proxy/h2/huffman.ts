// HPACK Huffman decoding (RFC 7541 §5.2, Appendix B). The code is canonical: symbols
// sorted by (code length, symbol) get consecutive codes, so the table of code lengths
// alone defines it. We never Huffman-encode (raw literals are always valid and cost no
// CPU); peers do encode, so we must decode.

/** Code length in bits of each symbol 0..255 and EOS (256), from Appendix B. */
const LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28,
  28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8,
  15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7,
  8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7,
  7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23,
  23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21,
  23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21,
  26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

export const EOS = 256;
const MAX_LEN = 30;

/** The code of each symbol (right-aligned), assigned canonically: by length, then symbol. */
export const CODES = new Uint32Array(257);
(function assign(): void {
  let code = 0;
  for (let len = 1; len <= MAX_LEN; len++) {
    for (let sym = 0; sym <= EOS; sym++) if (LENGTHS[sym] === len) CODES[sym] = code++;
    code <<= 1;
  }
})();

export function codeLength(sym: number): number { return LENGTHS[sym]!; }

// Decoding walks four bits at a time through a table built from the code: for each
// trie node and nibble, the node reached and the symbol completed on the way (at most
// one, as no code is shorter than 5 bits). -1 as the next node marks an invalid path
// (EOS, which must never appear inside a string, or a code that does not exist).
const CHILD0: number[] = [-1], CHILD1: number[] = [-1], LEAF: number[] = [-1];
for (let sym = 0; sym <= EOS; sym++) {
  let node = 0;
  for (let b = LENGTHS[sym]! - 1; b >= 0; b--) {
    const kids = (CODES[sym]! >>> b) & 1 ? CHILD1 : CHILD0;
    if (kids[node] === -1) { kids[node] = CHILD0.length; CHILD0.push(-1); CHILD1.push(-1); LEAF.push(-1); }
    node = kids[node]!;
  }
  LEAF[node] = sym;
}
const NODES = CHILD0.length;
const NEXT = new Int16Array(NODES * 16);
const EMIT = new Int16Array(NODES * 16);
for (let n = 0; n < NODES; n++) {
  for (let v = 0; v < 16; v++) {
    let node = n, emit = -1;
    for (let b = 3; b >= 0 && node >= 0; b--) {
      node = ((v >> b) & 1 ? CHILD1 : CHILD0)[node]!;
      if (node >= 0 && LEAF[node]! >= 0) {
        if (LEAF[node] === EOS) node = -1; else { emit = LEAF[node]!; node = 0; }
      }
    }
    NEXT[n * 16 + v] = node;
    EMIT[n * 16 + v] = emit;
  }
}
/** Nodes where a string may end: the root, or up to 7 one-bits into EOS (padding, §5.2). */
const ACCEPT = new Uint8Array(NODES);
for (let node = 0, d = 0; d <= 7; d++, node = CHILD1[node]!) ACCEPT[node] = 1;

let scratch = Buffer.allocUnsafe(256);

/**
 * Decodes buf[start..end) as latin1 text; null when the input is invalid: a code that
 * is not in the table, EOS inside the string, or padding longer than 7 bits or not all
 * ones (§5.2) — the caller turns null into COMPRESSION_ERROR.
 */
export function huffmanDecode(buf: Buffer, start: number, end: number): string | null {
  // At most 8/5 symbols per input byte.
  if (scratch.length < (end - start) * 2) scratch = Buffer.allocUnsafe((end - start) * 2);
  const out = scratch;
  let n = 0, state = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i]!;
    let e = state * 16 + (byte >> 4);
    state = NEXT[e]!;
    if (state < 0) return null;
    if (EMIT[e]! >= 0) out[n++] = EMIT[e]!;
    e = state * 16 + (byte & 15);
    state = NEXT[e]!;
    if (state < 0) return null;
    if (EMIT[e]! >= 0) out[n++] = EMIT[e]!;
  }
  return ACCEPT[state] === 1 ? out.toString('latin1', 0, n) : null;
}
