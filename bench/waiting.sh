#!/usr/bin/env bash
# Measures the server with many waiting frames and no workers: RSS after
# submitting JOBS jobs of FRAMES frames each, then the time a restart takes
# to load them from the store and the RSS after it.
# Usage: bench/waiting.sh [path/to/kiln] [jobs] [frames]
#        (default: target/release/kiln 50 20000, a million frames)
set -euo pipefail
KILN=${1:-target/release/kiln}
JOBS=${2:-50}
FRAMES=${3:-20000}
. "$(dirname "$0")/common.sh"
mem() { awk '/^(VmRSS|VmHWM)/ {printf "%s %d MiB  ", $1, $2 / 1024}' "/proc/$1/status"; echo; }
serve() {
  "$KILN" server --data "$dir/data" --listen 127.0.0.1:$port $server_flags 2>>"$dir/server.log" &
  server=$!
  wait_ca
  for _ in $(seq 6000); do "$KILN" jobs >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server did not start" >&2; exit 1
}

serve
echo "empty server: $(mem $server)"
for j in $(seq "$JOBS"); do
  printf 'name: w%05d\nlayers:\n  - {name: render, command: "render #FRAME#", frames: 1-%d}\n' \
    "$j" "$FRAMES" >"$dir/w$j.yaml"
done
t0=$(ms)
seq "$JOBS" | xargs -P 4 -I{} "$KILN" submit "$dir/w{}.yaml" >/dev/null
echo "submitted $JOBS x $FRAMES frames in $(($(ms) - t0)) ms"
echo "after submit:  $(mem $server)"
echo "store: $(du -sh "$dir/data" | cut -f1)"

kill -TERM "$server"; wait "$server" || true
t0=$(ms)
serve
echo "restart: answering after $(($(ms) - t0)) ms"
echo "after restart: $(mem $server)"
