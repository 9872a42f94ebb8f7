#!/usr/bin/env bash
# bench:l4's fast-path cost (L4_BENCH_ONLY=cost: weft's BPF nanoseconds per new
# connection through a VIP, from kernel.bpf_stats) for a BPF change, before and after in
# one run: the programs of git ref BEFORE (default main) and of this tree alternate,
# ROUNDS times each, on the same machine minutes apart. Prints the per-round figures
# and the median ratio after/before; writes test/bench/results/l4-ab.json.
#   scripts/bench-l4-ab.sh [BEFORE_REF] [ROUNDS]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ref="${1:-main}"
rounds="${2:-3}"
before="$(mktemp -d /tmp/weft-l4-before-XXXXXX)"
trap 'rm -rf "$before"' EXIT
# The BEFORE tree: its sources and BPF objects; the same node_modules (and native addon).
git -C "$here" archive "$ref" | tar -x -C "$before"
ln -s "$here/node_modules" "$before/node_modules"
make -s -C "$before/bpf" >/dev/null
make -s -C "$here/bpf" >/dev/null
mkdir -p "$here/test/bench/results"
out="$here/test/bench/results/l4-ab.json"
echo '[]' > "$out.tmp"
for i in $(seq 1 "$rounds"); do
  for side in before after; do
    dir="$here"; [ "$side" = before ] && dir="$before"
    (cd "$dir" && L4_BENCH_ONLY=cost node --import tsx test/bench/l4.ts >/dev/null)
    node -e '
      const fs = require("fs"); const [file, out, side, round] = process.argv.slice(1);
      const f = JSON.parse(fs.readFileSync(file, "utf8")).fastPath;
      const all = JSON.parse(fs.readFileSync(out, "utf8")); all.push({ side, round: Number(round), ...f });
      fs.writeFileSync(out, JSON.stringify(all));
      console.log(`${side.padEnd(6)} round ${round}: BPF ${f.bpfNsPerConn.toFixed(0)} ns/conn (connect4 ${(f.weft_connect4NsPerConn ?? 0).toFixed(0)} ns), non-VIP connect4 ${(f.nonVipConnect4Ns ?? 0).toFixed(0)} ns, direct conn ${f.directCpuUsPerConn.toFixed(1)} µs CPU`);
    ' "$dir/test/bench/results/l4-cost.json" "$out.tmp" "$side" "$i"
  done
done
node -e '
  const fs = require("fs"); const [tmp, out, ref] = process.argv.slice(1);
  const runs = JSON.parse(fs.readFileSync(tmp, "utf8"));
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const keys = ["bpfNsPerConn", "weft_connect4NsPerConn", "nonVipConnect4Ns"];
  const summary = {};
  for (const k of keys) {
    const b = runs.filter((r) => r.side === "before").map((r) => r[k]); const a = runs.filter((r) => r.side === "after").map((r) => r[k]);
    const paired = a.map((x, i) => x / b[i]);
    summary[k] = { before: med(b), after: med(a), ratio: med(paired), pairedRatios: paired };
    console.log(`${k.padEnd(24)} before ${med(b).toFixed(0)} ns  after ${med(a).toFixed(0)} ns  ratio ${med(paired).toFixed(3)} (rounds: ${paired.map((x) => x.toFixed(2)).join(", ")})`);
  }
  fs.writeFileSync(out, JSON.stringify({ bench: "l4-ab", before: ref, date: new Date().toISOString(), runs, summary }, null, 2));
  fs.unlinkSync(tmp);
' "$out.tmp" "$out" "$ref"
echo "wrote test/bench/results/l4-ab.json"
