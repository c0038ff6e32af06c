# Shared by the bench scripts (sourced, after KILN is set): checks the
# binary, makes a scratch directory and a free port for a throwaway server,
# and cleans both up on exit.
[ -x "$KILN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
KILN=$(realpath "$KILN")
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# KILN_TLS=1: the server uses TLS with its own CA (made in $dir/data on
# start), which the CLI and worker trust through KILN_CA; else loopback
# plaintext (server_flags holds --plaintext).
if [ "${KILN_TLS:-0}" = 1 ]; then
  server_flags=""
  export KILN_SERVER=https://127.0.0.1:$port KILN_CA=$dir/data/ca.pem
else
  server_flags=--plaintext
  export KILN_SERVER=http://127.0.0.1:$port
fi
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ms() { date +%s%3N; }
# After starting the server: in TLS mode, waits until it has made its CA;
# then signs the CLI in as the first admin (KILN_TOKEN, from the token the
# server writes in its data directory) and makes a join token for the
# bench's workers (JOIN: `kiln worker --join "$JOIN"`).
wait_ca() {
  [ -z "${KILN_CA:-}" ] || for _ in $(seq 100); do [ -s "$KILN_CA" ] && break; sleep 0.1; done
  for _ in $(seq 600); do [ -s "$dir/data/admin.token" ] && break; sleep 0.05; done
  KILN_TOKEN=$(cat "$dir/data/admin.token"); export KILN_TOKEN
  for _ in $(seq 600); do "$KILN" whoami >/dev/null 2>&1 && break; sleep 0.05; done
  JOIN=$("$KILN" token create --worker --name bench --expires 1d 2>/dev/null)
}
# Waits (up to 5 minutes) until the server has $1 hosts UP.
wait_up() {
  for _ in $(seq 600); do
    up=$("$KILN" hosts --json | python3 -c 'import json,sys; print(sum(h["state"]=="UP" for h in json.load(sys.stdin)))')
    [ "$up" -ge "$1" ] && return 0
    sleep 0.5
  done
  echo "only $up of $1 hosts came up" >&2
  return 1
}
# Submits the fill: one job of $1 one-core frames that run 30 simulated
# minutes; sets t_submit and t_acked (ms) around the submit.
submit_fill() {
  cat >"$dir/job.yaml" <<YAML
name: fill
env: {KILN_SIM_RUNTIME: 30m}
layers:
  - {name: render, command: render, frames: 1-$1, memory: 256M}
YAML
  t_submit=$(ms)
  "$KILN" submit "$dir/job.yaml" >/dev/null
  t_acked=$(ms)
}
