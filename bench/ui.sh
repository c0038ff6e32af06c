#!/usr/bin/env bash
# The web UI, measured in headless chromium (Debian's chromium and
# chromium-driver; selenium from PyPI, installed here if missing): a farm
# of 5,000 jobs and one of 100,000 frames. Prints the time from navigation
# to the first rows of the jobs view and of the big job's frames, the pages
# fetched while scrolling that job, how soon a state change shows after the
# API acknowledged it, and the page's long tasks (over 50 ms) while a fleet
# fills the farm with the job open.
# Usage: bench/ui.sh [path/to/kiln] [jobs] [frames] [runs] [hosts] [cores]
#        (default: target/release/kiln 5000 100000 5 1553 37)
set -euo pipefail
KILN=${1:-target/release/kiln}
JOBS=${2:-5000}
FRAMES=${3:-100000}
RUNS=${4:-5}
HOSTS=${5:-1553}
CORES=${6:-37}
. "$(dirname "$0")/common.sh"
python3 -c 'import selenium' 2>/dev/null ||
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --no-input selenium
[ -x /usr/bin/chromedriver ] || { echo "apt-get install chromium chromium-driver" >&2; exit 1; }

"$KILN" server --data "$dir/data" --listen 127.0.0.1:$port $server_flags 2>"$dir/server.log" &
wait_ca

echo "submitting $JOBS jobs and one of $FRAMES frames"
python3 - "$JOBS" <<'PY'
import http.client, os, sys, threading, urllib.parse
url = urllib.parse.urlparse(os.environ["KILN_SERVER"])
n = int(sys.argv[1])
def work(k):
    c = http.client.HTTPConnection(url.hostname, url.port)
    for i in range(k, n, 4):
        spec = "name: shot%04d-v%d\nshow: show%d\nshot: sh%03d\nlayers: [{name: r, command: r, frames: 1-10, tags: [nowhere]}]\n" % (i, i % 7, i % 5, i % 400)
        c.request("POST", "/api/v1/jobs", body=spec.encode(), headers={"Authorization": "Bearer " + os.environ["KILN_TOKEN"]})
        r = c.getresponse(); r.read()
        assert r.status == 201, r.status
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
cat >"$dir/big.yaml" <<YAML
name: big
env: {KILN_SIM_RUNTIME: 30m}
layers:
  - {name: render, command: render, frames: 1-$FRAMES, memory: 256M}
YAML
"$KILN" submit "$dir/big.yaml" >/dev/null

coproc UI { python3 "$(dirname "$0")/ui_bench.py" "$KILN_SERVER" big "$RUNS" 2>&1; }
while IFS= read -r line <&"${UI[0]}"; do
  echo "$line"
  [ "$line" = "ready for the fill" ] && break
done
nice -n 10 "$KILN" fleet --hosts "$HOSTS" --cores "$CORES" --until-busy 99 --json >"$dir/fleet.json" 2>"$dir/fleet.log"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("fleet: %d frames started, 99%% busy in %d ms" % (s["frames_started"], s["fill_99_ms"]))' "$dir/fleet.json"
echo >&"${UI[1]}"
cat <&"${UI[0]}"
