#!/usr/bin/env bash
# Measures the foundation's targets on this machine with the release binary:
#   1. 1,000 frames of `true` on one worker offering 16 cores: submit -> all done
#   2. latency from `kiln submit` returning to a single frame starting (idle worker)
#   3. idle RSS of `kiln worker`, fresh and after the work above (3,005 frames)
# Usage: bench/targets.sh [path/to/kiln]   (default: target/release/kiln)
#        KILN_TLS=1 bench/targets.sh        (the same over TLS; see common.sh)
set -euo pipefail
KILN=${1:-target/release/kiln}
. "$(dirname "$0")/common.sh"

"$KILN" server --data "$dir/data" --listen 127.0.0.1:$port $server_flags 2>"$dir/server.log" &
wait_ca
"$KILN" worker --name bench --cores 16 --work-dir "$dir/work" --allow-root 2>"$dir/worker.log" &
wpid=$!
for _ in $(seq 100); do "$KILN" hosts --json 2>/dev/null | grep -q '"UP"' && break; sleep 0.1; done
sleep 2
rss_fresh=$(awk '/VmRSS/ {print $2}' /proc/$wpid/status)
anon_fresh=$(awk '/^Anonymous/ {print $2}' /proc/$wpid/smaps_rollup)

# 1. Throughput.
cat > "$dir/thousand.yaml" <<YAML
name: thousand
layers:
  - name: t
    command: [/bin/true]
    frames: 1-1000
    memory: 64M
YAML
for run in 1 2 3; do
  sed -i "s/^name: .*/name: thousand$run/" "$dir/thousand.yaml"
  t0=$(ms)
  "$KILN" submit "$dir/thousand.yaml" --wait >/dev/null
  t1=$(ms)
  echo "1000 frames of /bin/true, 16 slots, run $run: $((t1 - t0)) ms submit-to-done"
done

# 2. Single-frame start latency (frame records its start time in ns).
for run in 1 2 3 4 5; do
  cat > "$dir/one.yaml" <<YAML
name: one$run
layers:
  - name: t
    command: [sh, -c, "date +%s%N > $dir/started$run"]
    frames: 1
YAML
  "$KILN" submit "$dir/one.yaml" >/dev/null
  t_sub=$(date +%s%N)
  for _ in $(seq 200); do [ -s "$dir/started$run" ] && break; sleep 0.01; done
  t_start=$(cat "$dir/started$run")
  echo "single frame, run $run: started $(( (t_start - t_sub) / 1000 )) us after submit returned"
done

# 3. Idle worker RSS, fresh (above) and after the work above (the worker is
# idle again). Target: at most 8 MiB both.
sleep 2
rss=$(awk '/VmRSS/ {print $2}' /proc/$wpid/status)
anon=$(awk '/^Anonymous/ {print $2}' /proc/$wpid/smaps_rollup)
echo "kiln worker idle RSS fresh: $rss_fresh KiB ($((rss_fresh / 1024)) MiB, anonymous $anon_fresh KiB)"
echo "kiln worker idle RSS after 3005 frames: $rss KiB ($((rss / 1024)) MiB, anonymous $anon KiB); threads: $(ls /proc/$wpid/task | wc -l)"
