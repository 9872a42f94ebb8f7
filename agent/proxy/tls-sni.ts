// Reads the server_name (SNI) from a TLS ClientHello without terminating TLS, so an
// app's own TLS can be routed by name and otherwise passed through untouched.

/** The SNI host name, or null when absent, malformed or not yet complete. */
export function parseSni(b: Buffer): string | null {
  try {
    if (b.length < 5 || b[0] !== 0x16) return null;
    const recEnd = 5 + b.readUInt16BE(3);
    if (b.length < recEnd || b[5] !== 0x01) return null; // handshake type ClientHello
    let p = 5 + 4 + 2 + 32; // handshake header, client_version, random
    p += 1 + b[p]!; // session id
    p += 2 + b.readUInt16BE(p); // cipher suites
    p += 1 + b[p]!; // compression methods
    if (p + 2 > recEnd) return null;
    const extEnd = p + 2 + b.readUInt16BE(p);
    p += 2;
    while (p + 4 <= extEnd && extEnd <= recEnd) {
      const type = b.readUInt16BE(p), len = b.readUInt16BE(p + 2);
      p += 4;
      if (type === 0) {
        // server_name_list: u16 length, then (u8 type, u16 len, name)
        let q = p + 2;
        while (q + 3 <= p + len) {
          const nt = b[q]!, nl = b.readUInt16BE(q + 1);
          if (nt === 0) return b.toString('ascii', q + 3, q + 3 + nl);
          q += 3 + nl;
        }
        return null;
      }
      p += len;
    }
    return null;
  } catch {
    return null;
  }
}
