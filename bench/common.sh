# Shared by the bench scripts (sourced, after KILN is set): checks the
# binary, makes a scratch directory and a free port for a throwaway server,
# and cleans both up on exit.
[ -x "$KILN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
KILN=$(realpath "$KILN")
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export KILN_SERVER=http://127.0.0.1:$port
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ms() { date +%s%3N; }
