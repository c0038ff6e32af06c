#!/usr/bin/env bash
# The worker's peak resident memory (VmHWM) while one frame writes a big log
# to stdout, and whether the server's copy is byte-exact.
# Usage: bench/logs.sh [path/to/kiln] [MB ...]   (default: target/release/kiln 200 1000)
set -euo pipefail
KILN=${1:-target/release/kiln}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(200 1000)
. "$(dirname "$0")/common.sh"

"$KILN" server --data "$dir/data" --listen 127.0.0.1:$port $server_flags 2>"$dir/server.log" &
wait_ca
for mb in "${sizes[@]}"; do
  # A fresh worker per size: VmHWM is the peak over a process's life.
  "$KILN" worker --name "logs$mb" --cores 1 --work-dir "$dir/work$mb" --allow-root --run-as-self --join "$JOIN" --log-cap 2G 2>"$dir/worker$mb.log" &
  wpid=$!
  for _ in $(seq 100); do
    "$KILN" hosts --json 2>/dev/null | python3 -c '
import json, sys
sys.exit(0 if any(h["name"] == sys.argv[1] and h["state"] == "UP" for h in json.load(sys.stdin)) else 1)
' "logs$mb" && break
    sleep 0.1
  done
  sleep 1
  idle=$(awk '/VmHWM/ {print $2}' /proc/$wpid/status)
  bytes=$((mb * 1000000))
  cat > "$dir/log$mb.yaml" <<YAML
name: log$mb
layers:
  - name: t
    command: [sh, -c, "seq 1 1000000000 | head -c $bytes"]
    frames: 1
YAML
  t0=$(ms)
  "$KILN" submit "$dir/log$mb.yaml" --wait >/dev/null
  t1=$(ms)
  peak=$(awk '/VmHWM/ {print $2}' /proc/$wpid/status)
  rss=$(awk '/VmRSS/ {print $2}' /proc/$wpid/status)
  # The server's copy: header (up to its "===" line), then exactly the
  # frame's bytes, then the footer and nothing else in between.
  log=$(ls -t "$dir"/data/logs/*/*.log | head -1)
  exact=$(python3 - "$log" "$bytes" <<'PY'
import hashlib, subprocess, sys
path, n = sys.argv[1], int(sys.argv[2])
want = subprocess.run(["sh", "-c", f"seq 1 1000000000 | head -c {n}"], capture_output=True).stdout
with open(path, "rb") as f:
    data = f.read()
start = data.index(b"\n===\n") + 5
body, rest = data[start:start + n], data[start + n:]
ok = body == want and rest.lstrip(b"\n").startswith(b"=== kiln frame ended")
print("byte-exact" if ok else "NOT byte-exact")
PY
)
  echo "${mb} MB log: worker VmHWM $peak KiB ($((peak / 1024)) MiB; $((idle / 1024)) MiB before the frame), VmRSS after $((rss / 1024)) MiB; $((t1 - t0)) ms; server copy $exact"
  kill "$wpid"; wait "$wpid" 2>/dev/null || true
done
