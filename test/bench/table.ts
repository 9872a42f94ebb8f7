// The benches' result table: a header row, a rule, then one row per figure, columns
// padded to their widest cell.
export function printTable(rows: readonly (readonly string[])[]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const [i, r] of rows.entries()) {
    process.stdout.write(r.map((c, j) => c.padEnd(widths[j]!)).join(' | ') + '\n');
    if (i === 0) process.stdout.write(widths.map((w) => '-'.repeat(w)).join('-|-') + '\n');
  }
}
