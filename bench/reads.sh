#!/usr/bin/env bash
# Measures API reads while the Maestro farm fills, with 10,000 other jobs
# in the farm (each waiting for a tag no host has, so the scheduler and
# every job list carry them). Readers run back to back, each on one
# connection: gRPC every job (`kiln probe --read jobs`, pages of 1,000),
# gRPC the first page of 100 jobs (`--read jobs-page`), gRPC one job, gRPC
# every host (pages of 1,000), gRPC the first page of 100 hosts, REST the
# first page of jobs, REST one job and REST the first page of hosts
# (Python, keep-alive).
# Prints p50/p99/max of each during the fill (from submit to 99 % busy).
# Usage: bench/reads.sh [path/to/kiln] [hosts] [cores] [frames] [jobs]
#        (default: target/release/kiln 1553 37 120000 10000)
set -euo pipefail
KILN=${1:-target/release/kiln}
HOSTS=${2:-1553}
CORES=${3:-37}
FRAMES=${4:-120000}
JOBS=${5:-10000}
. "$(dirname "$0")/common.sh"

"$KILN" server --data "$dir/data" --listen 127.0.0.1:$port $server_flags 2>"$dir/server.log" &
wait_ca

# The REST side: a keep-alive connection per thread, TLS trusting the
# server's CA when the bench runs with KILN_TLS=1.
cat >"$dir/rest.py" <<'PY'
import http.client, json, os, ssl, sys, threading, time, urllib.parse
url = urllib.parse.urlparse(os.environ["KILN_SERVER"])
token = os.environ["KILN_TOKEN"]
def conn():
    if url.scheme == "https":
        ctx = ssl.create_default_context(cafile=os.environ["KILN_CA"])
        ctx.check_hostname = False
        return http.client.HTTPSConnection(url.hostname, url.port, context=ctx)
    return http.client.HTTPConnection(url.hostname, url.port)
def call(c, method, path, body=None):
    h = {"Authorization": "Bearer " + token}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return data
if sys.argv[1] == "submit":
    n = int(sys.argv[2])
    def work(lo, hi):
        c = conn()
        for i in range(lo, hi):
            spec = ("name: parked-%05d\nshow: parked\n"
                    "layers: [{name: r, command: r, frames: 1, tags: [nowhere]}]\n" % i)
            call(c, "POST", "/api/v1/jobs", spec.encode())
    ts = [threading.Thread(target=work, args=(k * n // 16, (k + 1) * n // 16)) for k in range(16)]
    [t.start() for t in ts]; [t.join() for t in ts]
else:
    path, end = sys.argv[2], time.time() + float(sys.argv[3])
    c = conn()
    while time.time() < end:
        t0 = time.time()
        call(c, "GET", path)
        print(int(t0 * 1000), int((time.time() - t0) * 1e6), flush=True)
PY
t0=$(ms)
python3 "$dir/rest.py" submit "$JOBS"
echo "$JOBS parked jobs submitted over REST in $(( $(ms) - t0 )) ms"

"$KILN" fleet --hosts "$HOSTS" --cores "$CORES" --until-busy 99 --json \
  >"$dir/fleet.json" 2>"$dir/fleet.log" &
fleet=$!
wait_up "$HOSTS"
sleep 2

"$KILN" probe --read jobs --seconds 600 >"$dir/grpc-jobs" &
"$KILN" probe --read jobs-page --seconds 600 >"$dir/grpc-page" &
"$KILN" probe --read job --job parked-00000 --seconds 600 >"$dir/grpc-job" &
"$KILN" probe --read hosts --seconds 600 >"$dir/grpc-hosts" &
"$KILN" probe --read hosts-page --seconds 600 >"$dir/grpc-hosts-page" &
python3 "$dir/rest.py" get "/api/v1/jobs?page_size=100" 600 >"$dir/rest-jobs" &
python3 "$dir/rest.py" get "/api/v1/jobs/parked-00000" 600 >"$dir/rest-job" &
python3 "$dir/rest.py" get "/api/v1/hosts?page_size=100" 600 >"$dir/rest-hosts" &
sleep 2

submit_fill "$FRAMES"
wait "$fleet" || true
sleep 1
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true

python3 - "$dir" "$t_submit" "$t_acked" <<'PY'
import json, sys
d, t_submit, t_acked = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = json.load(open(d + "/fleet.json"))
busy = s["first_launch_unix_ms"] + s["fill_99_ms"]
print(f"submit acknowledged after {t_acked - t_submit} ms; 99% busy after {busy - t_submit} ms"
      f" ({s['frames_started']} frames started, overcommits {s['overcommits']})")
def pct(v, p): return v[min(len(v) - 1, int(p * len(v)))] if v else None
for name in ["grpc-jobs", "grpc-page", "grpc-job", "grpc-hosts", "grpc-hosts-page", "rest-jobs",
             "rest-job", "rest-hosts"]:
    rows = [tuple(map(int, l.split())) for l in open(f"{d}/{name}") if len(l.split()) == 2]
    during = sorted(us / 1000 for t, us in rows if t + us / 1000 >= t_submit and t <= busy)
    before = sorted(us / 1000 for t, us in rows if t + us / 1000 < t_submit)
    print(f"{name:15} during the fill: n={len(during):5} p50={pct(during, .5)} ms p99={pct(during, .99)} ms max={during[-1] if during else None} ms"
          f" | before: p50={pct(before, .5)} ms")
PY
