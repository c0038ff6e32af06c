#!/usr/bin/env bash
# Event fan-out while the Maestro farm fills: 500 SSE subscribers (`kiln
# probe --read events`: one connection each, `kinds=job.submitted`)
# follow GET /api/v1/events while a pipeline submits a small job every
# 50 ms. For every job.submitted event each subscriber receives, the delay
# from the event's `at` (when the farm made the change, before its commit)
# to its arrival is recorded: an upper bound on commit-to-subscriber time.
# Prints p50/p99/max of that delay during the fill, how many deliveries
# were expected and made, and the fill's time to 99 % busy.
# Usage: bench/sse.sh [path/to/kiln] [subscribers] [hosts] [cores] [frames]
#        (default: target/release/kiln 500 1553 37 120000)
set -euo pipefail
KILN=${1:-target/release/kiln}
SUBS=${2:-500}
HOSTS=${3:-1553}
CORES=${4:-37}
FRAMES=${5:-120000}
. "$(dirname "$0")/common.sh"

"$KILN" server --data "$dir/data" --listen 127.0.0.1:$port $server_flags \
  --max-connections-per-address 0 2>"$dir/server.log" &
wait_ca

cat >"$dir/submit.py" <<'PY'
import http.client, os, ssl, sys, threading, time, urllib.parse
url = urllib.parse.urlparse(os.environ["KILN_SERVER"])
end = time.time() + float(sys.argv[1])
def conn():
    if url.scheme == "https":
        ctx = ssl.create_default_context(cafile=os.environ["KILN_CA"]); ctx.check_hostname = False
        return http.client.HTTPSConnection(url.hostname, url.port, context=ctx)
    return http.client.HTTPConnection(url.hostname, url.port)
def work(k):
    c, i = conn(), 0
    while time.time() < end:
        name = "marker-%d-%05d" % (k, i)
        spec = "name: %s\nshow: markers\nlayers: [{name: r, command: r, frames: 1, tags: [nowhere]}]\n" % name
        c.request("POST", "/api/v1/jobs", body=spec.encode(),
                  headers={"Authorization": "Bearer " + os.environ["KILN_TOKEN"]})
        r = c.getresponse(); r.read()
        # Acknowledged: the job's commit is durable and its events published.
        with lock:
            sys.stdout.write("%s %.1f %d\n" % (name, time.time() * 1000, r.status))
            sys.stdout.flush()
        i += 1
        time.sleep(0.05)
lock = threading.Lock()
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
PY

"$KILN" fleet --hosts "$HOSTS" --cores "$CORES" --until-busy 99 --json \
  >"$dir/fleet.json" 2>"$dir/fleet.log" &
fleet=$!
wait_up "$HOSTS"
"$KILN" probe --read events --subscribers "$SUBS" --kinds job.submitted --seconds 600 \
  >"$dir/got" 2>"$dir/sse.log" &
sse=$!
for _ in $(seq 1200); do grep -q '^# ready' "$dir/got" 2>/dev/null && break; sleep 0.1; done
grep -q '^# ready' "$dir/got" || { echo "subscribers did not connect" >&2; cat "$dir/sse.log" >&2; exit 1; }
echo "$SUBS subscribers connected"
python3 "$dir/submit.py" 600 >"$dir/markers" &
sleep 5

submit_fill "$FRAMES"
wait "$fleet" || true
sleep 1
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true

python3 - "$dir" "$t_submit" "$SUBS" <<'PY'
import json, sys
d, t_submit, subs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = json.load(open(d + "/fleet.json"))
busy = s["first_launch_unix_ms"] + s["fill_99_ms"]
print(f"99% busy {busy - t_submit} ms after the submit ({s['frames_started']} frames started)")
acked = {}
for l in open(d + "/markers"):
    if len(l.split()) == 3:
        name, t, status = l.split()
        acked[name] = float(t)
rows = [l.split() for l in open(d + "/got") if not l.startswith("#") and len(l.split()) == 5]
during = [(int(i), int(seq), int(at), float(now), job) for i, seq, at, now, job in rows
          if t_submit <= int(at) <= busy and job in acked]
seqs = {seq for _, seq, _, _, _ in during}
first = {}
for _, seq, _, now, _ in during:
    first[seq] = min(first.get(seq, now), now)
def pct(v, p): return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
def show(what, v):
    v = sorted(v)
    print(f"{what:44} p50={pct(v, .5):7.1f} ms p99={pct(v, .99):7.1f} ms max={v[-1] if v else float('nan'):7.1f} ms")
print(f"job.submitted events during the fill: {len(seqs)}; deliveries {len(during)} "
      f"of {len(seqs) * subs} expected")
# The submit is answered after its commit, so (arrival - answer) bounds
# (arrival - commit) from below by the answer's own trip, which is small;
# (arrival - at) bounds it from above (at is before the step and commit).
show("arrival - the submit's answer (~ commit):", [now - acked[job] for _, _, _, now, job in during])
show("arrival - first subscriber's arrival:", [now - first[seq] for _, seq, _, now, _ in during])
show("arrival - change (at, before step+commit):", [now - at for _, _, at, now, _ in during])
idle = [(int(i), int(seq), int(at), float(now), job) for i, seq, at, now, job in rows
        if int(at) < t_submit and job in acked]
first = {}
for _, seq, _, now, _ in idle:
    first[seq] = min(first.get(seq, now), now)
print(f"before the fill (idle farm): {len({r[1] for r in idle})} events")
show("  arrival - first subscriber's arrival:", [now - first[seq] for _, seq, _, now, _ in idle])
show("  arrival - change (at):", [now - at for _, _, at, now, _ in idle])
PY
