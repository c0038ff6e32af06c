#!/usr/bin/env bash
# Measures a cold fill with the release binary: a simulated farm (`kiln
# fleet`), one job of one-core frames submitted at once, and `kiln jobs`
# issued back to back meanwhile. Prints the time from submit to 99 % of
# the cores busy and the latency of the reads answered during the fill.
# KILN_LOG=kiln_server=debug also prints each step's plan, apply and commit.
# Usage: bench/fill.sh [path/to/kiln] [hosts] [cores] [frames]
#        (default: target/release/kiln 1553 37 120000, the Maestro farm)
set -euo pipefail
KILN=${1:-target/release/kiln}
HOSTS=${2:-1553}
CORES=${3:-37}
FRAMES=${4:-120000}
. "$(dirname "$0")/common.sh"

"$KILN" server --data "$dir/data" --listen 127.0.0.1:$port $server_flags 2>"$dir/server.log" &
wait_ca
for _ in $(seq 100); do "$KILN" jobs >/dev/null 2>&1 && break; sleep 0.1; done
"$KILN" fleet --hosts "$HOSTS" --cores "$CORES" --until-busy 99 --json \
  >"$dir/fleet.json" 2>"$dir/fleet.log" &
fleet=$!
wait_up "$HOSTS"
sleep 2

# Reads back to back: start (ms) and latency (ms) of each.
(
  while :; do
    t0=$(date +%s%N)
    "$KILN" jobs --json >/dev/null
    echo "$((t0 / 1000000)) $((($(date +%s%N) - t0) / 1000000))"
  done
) >"$dir/reads" &
reads=$!
sleep 1

submit_fill "$FRAMES"
wait "$fleet" || true
kill "$reads"; wait "$reads" 2>/dev/null || true

python3 - "$dir/fleet.json" "$dir/reads" "$t_submit" "$t_acked" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t_submit, t_acked = int(sys.argv[3]), int(sys.argv[4])
first = s["first_launch_unix_ms"]
busy = first + s["fill_99_ms"]
print(f"submit acknowledged after {t_acked - t_submit} ms")
print(f"submit -> first launch {first - t_submit} ms; -> 99% busy {busy - t_submit} ms"
      f" ({s['frames_started']} frames started, overcommits {s['overcommits']})")
reads = [tuple(map(int, l.split())) for l in open(sys.argv[2]) if l.strip()]
before = sorted(d for t, d in reads if t + d < t_submit)
during = [(t - t_submit, d) for t, d in reads if t + d >= t_submit and t <= busy]
print("reads during the fill (start after submit, latency) ms:", during)
during = sorted(d for _, d in during)
def pct(v, p): return v[min(len(v) - 1, int(p * len(v)))] if v else None
print(f"kiln jobs before the submit: n={len(before)} p50={pct(before, .5)} ms max={before[-1] if before else None} ms")
print(f"kiln jobs during the fill:   n={len(during)} p50={pct(during, .5)} ms max={during[-1] if during else None} ms")
PY
# With KILN_LOG=kiln_server=debug: the steps that started frames, and commits.
sed 's/\x1b\[[0-9;]*m//g' "$dir/server.log" | grep -E "scheduling pass.*started=[1-9]|commit attempts=[0-9]+ frames=[1-9]" |
  sed 's/^.*applier: //' | head -8 || true
