// HPACK Huffman decoding (RFC 7541 §5.2, Appendix B). The code is canonical: symbols
// sorted by (code length, symbol) get consecutive codes, so the code lengths alone
// define it and decoding needs only per-length first-code/offset tables — no 257-entry
// code list or bit trie. We never Huffman-encode (raw literals are always valid and
// cost no CPU); peers do encode, so we must decode.

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

/** Symbols in canonical order; for each length: first code, index of its first symbol, count. */
const SORTED = new Uint16Array(257);
const FIRST_CODE = new Int32Array(MAX_LEN + 1);
const FIRST_INDEX = new Int32Array(MAX_LEN + 1);
const COUNT = new Int32Array(MAX_LEN + 1);
/** The code of each symbol (right-aligned); used by tests and by the encoder of test vectors. */
export const CODES = new Uint32Array(257);

(function build(): void {
  let n = 0;
  for (let len = 1; len <= MAX_LEN; len++) for (let s = 0; s <= EOS; s++) if (LENGTHS[s] === len) SORTED[n++] = s;
  let code = 0, idx = 0;
  for (let len = 1; len <= MAX_LEN; len++) {
    FIRST_CODE[len] = code;
    FIRST_INDEX[len] = idx;
    while (idx < 257 && LENGTHS[SORTED[idx]!] === len) { CODES[SORTED[idx]!] = code++; idx++; COUNT[len]++; }
    code <<= 1;
  }
})();

export function codeLength(sym: number): number { return LENGTHS[sym]!; }

/**
 * Decodes buf[start..end) as latin1 text; null when the input is invalid: a code that
 * is not in the table, EOS inside the string, or padding longer than 7 bits or not all
 * ones (§5.2) — the caller turns null into COMPRESSION_ERROR.
 */
export function huffmanDecode(buf: Buffer, start: number, end: number): string | null {
  let out = '';
  let code = 0, len = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i]!;
    for (let b = 7; b >= 0; b--) {
      code = (code << 1) | ((byte >> b) & 1);
      len++;
      const k = code - FIRST_CODE[len]!;
      if (k >= 0 && k < COUNT[len]!) {
        const sym = SORTED[FIRST_INDEX[len]! + k]!;
        if (sym === EOS) return null;
        out += String.fromCharCode(sym);
        code = 0; len = 0;
      } else if (len >= MAX_LEN) return null;
    }
  }
  // Leftover bits must be a prefix of EOS (all ones) and shorter than a byte.
  if (len > 7 || code !== (1 << len) - 1) return null;
  return out;
}
