#!/usr/bin/env bash
# Measures the foundation's targets on this machine with the release binary:
#   1. 1,000 frames of `true` on one worker offering 16 cores: submit -> all done
#   2. latency from `kiln submit` returning to a single frame starting (idle worker)
#   3. idle RSS of `kiln worker`, fresh and after the work above (3,005 frames),
#      each 2 s into the idle period and 12 s into it, once its idle trim
#      (after 5 s idle, see crates/kiln-worker/src/trim.rs) has dropped its
#      code pages and a heartbeat (every 5 s) has mapped back what it runs;
#      with the anonymous and file-backed parts
#   4. latency as in 2, of a frame that starts right after an idle trim
# Usage: bench/targets.sh [path/to/kiln]   (default: target/release/kiln)
#        KILN_TLS=1 bench/targets.sh        (the same over TLS; see common.sh)
set -euo pipefail
KILN=${1:-target/release/kiln}
. "$(dirname "$0")/common.sh"

"$KILN" server --data "$dir/data" --listen 127.0.0.1:$port $server_flags 2>"$dir/server.log" &
wait_ca
"$KILN" worker --name bench --cores 16 --work-dir "$dir/work" --allow-root --run-as-self --join "$JOIN" 2>"$dir/worker.log" &
wpid=$!
for _ in $(seq 100); do "$KILN" hosts --json 2>/dev/null | grep -q '"UP"' && break; sleep 0.1; done
# VmRSS, its anonymous and file-backed parts, in KiB.
rss() {
  local rss anon
  rss=$(awk '/VmRSS/ {print $2}' /proc/$wpid/status)
  anon=$(awk '/^Anonymous/ {print $2}' /proc/$wpid/smaps_rollup)
  echo "$rss KiB ($((rss / 1024)) MiB; anonymous $anon, file-backed $((rss - anon)))"
}
sleep 2
rss_fresh=$(rss)
sleep 10
rss_fresh_trimmed=$(rss)

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

# 2. Single-frame start latency (the frame records its start time in ns):
# one_frame NAME LABEL submits one frame and says how long it took to start.
one_frame() {
  cat > "$dir/one.yaml" <<YAML
name: $1
layers:
  - name: t
    command: [sh, -c, "date +%s%N > $dir/$1"]
    frames: 1
YAML
  "$KILN" submit "$dir/one.yaml" >/dev/null
  local t_sub t_start
  t_sub=$(date +%s%N)
  for _ in $(seq 200); do [ -s "$dir/$1" ] && break; sleep 0.01; done
  t_start=$(cat "$dir/$1")
  echo "$2: started $(( (t_start - t_sub) / 1000 )) us after submit returned"
}
for run in 1 2 3 4 5; do one_frame "one$run" "single frame, run $run"; done

# 3. Idle worker RSS, fresh (above) and after the work above (the worker is
# idle again). Target: at most 8 MiB both.
sleep 2
rss_after=$(rss)
sleep 10
rss_after_trimmed=$(rss)
echo "kiln worker idle RSS fresh, 2 s idle: $rss_fresh"
echo "kiln worker idle RSS fresh, 12 s idle (trimmed): $rss_fresh_trimmed"
echo "kiln worker idle RSS after 3005 frames, 2 s idle: $rss_after"
echo "kiln worker idle RSS after 3005 frames, 12 s idle (trimmed): $rss_after_trimmed; threads: $(ls /proc/$wpid/task | wc -l)"

# 4. Single-frame start latency right after an idle trim: the first frame
# maps back the code it runs.
for run in 1 2 3; do
  [ "$run" = 1 ] || sleep 7
  one_frame "trimmed$run" "single frame after an idle trim, run $run"
done
