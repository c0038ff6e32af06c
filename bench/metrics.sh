#!/usr/bin/env bash
# Times `GET /metrics` at the Maestro farm's size with the release binary:
# a simulated farm (`kiln fleet`, as bench/fill.sh builds it), JOBS small
# jobs beside one job of one-core frames that fills it, then scrapes with
# curl, during the fill and once the farm is full. Prints each phase's
# scrape times (curl's time_total) and the scrape's size; asserts nothing.
# The target (issue 12): a scrape takes at most 50 ms.
# Usage: bench/metrics.sh [path/to/kiln] [hosts] [cores] [frames] [jobs]
#        (default: target/release/kiln 1553 37 120000 1000)
set -euo pipefail
KILN=${1:-target/release/kiln}
HOSTS=${2:-1553}
CORES=${3:-37}
FRAMES=${4:-120000}
JOBS=${5:-1000}
. "$(dirname "$0")/common.sh"
[ "${KILN_TLS:-0}" = 1 ] && curl_tls=(--cacert "$KILN_CA") || curl_tls=()

"$KILN" server --data "$dir/data" --listen 127.0.0.1:$port $server_flags 2>"$dir/server.log" &
wait_ca
scrape() {
  curl -sS "${curl_tls[@]}" -H "Authorization: Bearer $KILN_TOKEN" -o "$dir/scrape" \
    -w '%{time_total}\n' "$KILN_SERVER/metrics"
}
# Prints count, p50, p90 and max of the times (seconds) in file $2, as ms.
summary() {
  python3 - "$1" "$2" <<'PY'
import sys
v = sorted(float(l) * 1e3 for l in open(sys.argv[2]) if l.strip())
p = lambda q: v[min(len(v) - 1, int(q * len(v)))]
print(f"/metrics {sys.argv[1]}: n={len(v)} p50={p(.5):.1f} ms p90={p(.9):.1f} ms max={v[-1]:.1f} ms")
PY
}

"$KILN" fleet --hosts "$HOSTS" --cores "$CORES" --json >"$dir/fleet.json" 2>"$dir/fleet.log" &
wait_up "$HOSTS"
# Small jobs that wait behind the fill: many layers and shows to walk.
for i in $(seq "$JOBS"); do
  printf 'name: small%s\nshow: show%s\npriority: 1\nlayers:\n  - {name: a, command: a, frames: 1-10}\n  - {name: b, command: b, frames: 1-10, depends: [a]}\n' \
    "$i" "$((i % 20))" >"$dir/small.yaml"
  "$KILN" submit "$dir/small.yaml" >/dev/null
done
for _ in $(seq 20); do scrape >>"$dir/idle"; done
summary "before the fill ($HOSTS hosts up, $JOBS small jobs)" "$dir/idle"

cat >"$dir/job.yaml" <<YAML
name: fill
env: {KILN_SIM_RUNTIME: 30m}
layers:
  - {name: render, command: render, frames: 1-$FRAMES, memory: 256M}
YAML
"$KILN" submit "$dir/job.yaml" >/dev/null
busy() {
  grep '^kiln_frames{state="running"}' "$dir/scrape" | awk '{print $2}'
}
want=$((HOSTS * CORES * 99 / 100))
for _ in $(seq 1200); do
  scrape >>"$dir/filling"
  [ "$(busy)" -ge "$want" ] 2>/dev/null && break
  sleep 0.1
done
summary "during the fill" "$dir/filling"
sleep 2
for _ in $(seq 50); do scrape >>"$dir/full"; done
summary "full ($(busy) frames running)" "$dir/full"
echo "scrape size: $(wc -c <"$dir/scrape") bytes, $(grep -vc '^#' "$dir/scrape") samples"
