#!/usr/bin/env bash
# Event fan-out while the Maestro farm fills: 500 SSE subscribers (`kiln
# probe --read events`: one connection each, `kinds=job.submitted`)
# follow GET /api/v1/events while a pipeline (4 threads) submits small
# jobs. For every job.submitted event each subscriber receives, the delay
# from the moment the server made it visible (committed and published: the
# server logs it at debug level) to its arrival is recorded. Prints p50/p99/
# max of that delay during the fill and on the idle farm before it, how many
# deliveries were expected and made, the fill's time to 99 % busy, and the
# server's own side: the share of deliveries its `kiln_event_delivery_seconds`
# histogram saw handed to a connection within 10/25/50/100 ms (what a
# subscriber elsewhere would get, less the network and its own CPU).
# The simulated fleet and the subscribers run at nice 10: they stand for
# 1,553 other machines and 500 browsers elsewhere, and on a small box they
# would otherwise take the CPU the server needs. A starved subscriber only
# reads late, so its arrival times can be worse for it, never better; the
# server-side shares show what the server itself achieved.
# Usage: bench/sse.sh [path/to/kiln] [subscribers] [hosts] [cores] [frames]
#        (default: target/release/kiln 500 1553 37 120000)
set -euo pipefail
KILN=${1:-target/release/kiln}
SUBS=${2:-500}
HOSTS=${3:-1553}
CORES=${4:-37}
FRAMES=${5:-120000}
. "$(dirname "$0")/common.sh"

# The server logs when each event number became visible (committed and
# published), to line arrivals up with.
KILN_LOG=info,kiln_server::events=debug \
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

nice -n 10 "$KILN" fleet --hosts "$HOSTS" --cores "$CORES" --until-busy 99 --json \
  >"$dir/fleet.json" 2>"$dir/fleet.log" &
fleet=$!
wait_up "$HOSTS"
nice -n 10 "$KILN" probe --read events --subscribers "$SUBS" --kinds job.submitted --seconds 600 \
  >"$dir/got" 2>"$dir/sse.log" &
sse=$!
for _ in $(seq 1200); do grep -q '^# ready' "$dir/got" 2>/dev/null && break; sleep 0.1; done
grep -q '^# ready' "$dir/got" || { echo "subscribers did not connect" >&2; cat "$dir/sse.log" >&2; exit 1; }
echo "$SUBS subscribers connected"
python3 "$dir/submit.py" 600 >"$dir/markers" &
sleep 5

# The server's own side: its delivery histogram (publication to handing
# the event to the connection), scraped around the fill.
cat >"$dir/scrape.py" <<'PY'
import http.client, os, ssl, urllib.parse
url = urllib.parse.urlparse(os.environ["KILN_SERVER"])
if url.scheme == "https":
    ctx = ssl.create_default_context(cafile=os.environ["KILN_CA"]); ctx.check_hostname = False
    c = http.client.HTTPSConnection(url.hostname, url.port, context=ctx)
else:
    c = http.client.HTTPConnection(url.hostname, url.port)
c.request("GET", "/metrics", headers={"Authorization": "Bearer " + os.environ["KILN_TOKEN"]})
for l in c.getresponse().read().decode().splitlines():
    if l.startswith("kiln_event_delivery_seconds_bucket") or l.startswith("kiln_event_delivery_seconds_count"):
        print(l)
PY
python3 "$dir/scrape.py" >"$dir/delivery.before"
submit_fill "$FRAMES"
wait "$fleet" || true
python3 "$dir/scrape.py" >"$dir/delivery.after"
sleep 1
kill $(jobs -p) 2>/dev/null || true
wait 2>/dev/null || true

python3 - "$dir" "$t_submit" "$SUBS" <<'PY'
import datetime, json, re, sys
d, t_submit, subs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = json.load(open(d + "/fleet.json"))
busy = s["first_launch_unix_ms"] + s["fill_99_ms"]
print(f"99% busy {busy - t_submit} ms after the submit ({s['frames_started']} frames started)")
# When each number became visible: `... published last=N` in the log.
published = []
for l in open(d + "/server.log"):
    l = re.sub(r"\x1b\[[0-9;]*m", "", l)
    m = re.match(r"(\S+Z) .*published last=(\d+)", l)
    if m:
        t = datetime.datetime.strptime(m.group(1).replace("Z", "+00:00"), "%Y-%m-%dT%H:%M:%S.%f%z")
        published.append((int(m.group(2)), t.timestamp() * 1000))
published.sort()
def visible(seq):
    lo, hi = 0, len(published)
    while lo < hi:
        mid = (lo + hi) // 2
        if published[mid][0] < seq: lo = mid + 1
        else: hi = mid
    return published[lo][1] if lo < len(published) else None
acked = set()
for l in open(d + "/markers"):
    if len(l.split()) == 3:
        acked.add(l.split()[0])
rows = [l.split() for l in open(d + "/got") if not l.startswith("#") and len(l.split()) == 5]
rows = [(int(seq), visible(int(seq)), float(now)) for i, seq, at, now, job in rows if job in acked]
if any(v is None for _, v, _ in rows):
    sys.exit("an event arrived that the server's log never published")
def pct(v, p): return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
def show(what, rows):
    seqs = {seq for seq, _, _ in rows}
    v = sorted(now - vis for _, vis, now in rows)
    print(f"{what}: {len(seqs)} job.submitted events, {len(rows)} deliveries of {len(seqs) * subs} expected")
    print(f"  arrival - published (committed):  p50={pct(v, .5):6.1f} ms p99={pct(v, .99):6.1f} ms "
          f"max={v[-1] if v else float('nan'):6.1f} ms")
    # Whether the time goes before the fan-out starts or in it.
    first = {}
    for seq, vis, now in rows:
        first[seq] = min(first.get(seq, now), now)
    f = sorted(first[seq] - vis for seq, vis, _ in {(r[0], r[1], 0) for r in rows})
    print(f"  first subscriber's arrival:       p50={pct(f, .5):6.1f} ms p99={pct(f, .99):6.1f} ms "
          f"max={f[-1] if f else float('nan'):6.1f} ms")
show("during the fill", [r for r in rows if t_submit <= r[1] <= busy])
def buckets(f):
    out = {}
    for l in open(f):
        name, v = l.rsplit(" ", 1)
        out[name] = float(v)
    return out
b0, b1 = buckets(d + "/delivery.before"), buckets(d + "/delivery.after")
n = b1.get("kiln_event_delivery_seconds_count", 0) - b0.get("kiln_event_delivery_seconds_count", 0)
within = lambda le: b1.get(f'kiln_event_delivery_seconds_bucket{{le="{le}"}}', 0) - b0.get(f'kiln_event_delivery_seconds_bucket{{le="{le}"}}', 0)
if n:
    print(f"  server side (kiln_event_delivery_seconds, {int(n)} deliveries from the submit to 99 % busy): "
          + ", ".join(f"{100 * within(le) / n:.1f} % within {float(le) * 1000:g} ms" for le in ["0.01", "0.025", "0.05", "0.1"]))
show("idle farm, before the fill", [r for r in rows if r[1] < t_submit])
PY
