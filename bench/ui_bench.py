"""The web UI in headless chromium (bench/ui.sh runs this against a server
it filled): time to the first rows of the jobs view and of a big job's
frames, data fetched while scrolling that job, long tasks while a fleet
fills the farm with the job's page open, and how soon a state change made
through the API shows on the page."""
import json, os, statistics, subprocess, sys, time, urllib.request
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

base, token, job, runs = sys.argv[1], os.environ["KILN_TOKEN"], sys.argv[2], int(sys.argv[3])

o = Options()
o.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1600,1000", "--disable-background-networking", "--disable-component-update",
          "--disable-sync", "--no-first-run"]:
    o.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
d.set_script_timeout(60)

def first_rows(path, table):
    """ms from navigation start to the table's first real rows."""
    d.get(base + path)
    for _ in range(600):
        t = d.execute_script(f"const m = performance.getEntriesByName('kiln:rows:{table}'); return m.length ? m[0].startTime : null")
        if t is not None:
            return t
        time.sleep(0.02)
    sys.exit(f"{path}: no rows in 12 s")

def api(method, path, body=None):
    req = urllib.request.Request(base + "/api/v1" + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)

d.get(base + "/login#token=" + token)
time.sleep(1.5)
jobs = [first_rows("/jobs?all=true", "jobs") for _ in range(runs)]
n_jobs = d.execute_script("return document.querySelector('kiln-vtable').source.count()")
print(f"jobs view ({n_jobs} jobs): first rows {statistics.median(jobs):.0f} ms after navigation "
      f"(median of {runs}; {', '.join(f'{t:.0f}' for t in jobs)})")
big = [first_rows(f"/jobs/{job}", "frames") for _ in range(runs)]
total = d.execute_script("return document.querySelectorAll('kiln-vtable')[1].source.count()")
print(f"job of {total} frames: first rows {statistics.median(big):.0f} ms after navigation "
      f"(median of {runs}; {', '.join(f'{t:.0f}' for t in big)})")

# Scrolling: a screen at a time through 100 screens, then to the middle
# and the end; what was fetched, and the long tasks meanwhile.
scroll = d.execute_async_script("""
const done = arguments[arguments.length - 1];
const t = document.querySelectorAll('kiln-vtable')[1];
const vp = t.querySelector('.vt-viewport');
const fetched = () => performance.getEntriesByType('resource').filter((e) => e.name.includes('/frames?')).length;
const before = fetched(), tasks = window.__kilnLongTasks.length;
const screen = vp.clientHeight;
let i = 0;
const step = () => {
  if (i < 100) { vp.scrollTop += screen; i++; return setTimeout(step, 16); }
  if (i === 100) { vp.scrollTop = vp.scrollHeight / 2; i++; return setTimeout(step, 1500); }
  if (i === 101) { vp.scrollTop = vp.scrollHeight; i++; return setTimeout(step, 4000); }
  const rows = t.querySelectorAll('.vt-row[data-index]').length;
  const loading = t.querySelectorAll('.vt-row.loading').length;
  done({ screens: 100, rows_per_screen: Math.floor(screen / 30), pages: fetched() - before,
         long: window.__kilnLongTasks.slice(tasks), shown: rows, loading });
};
step();
""")
print(f"scrolling {scroll['screens']} screens ({scroll['rows_per_screen']} rows each), then to the middle and the end: "
      f"{scroll['pages']} pages of 500 frames fetched; long tasks: {len(scroll['long'])}"
      f"{' (max %.0f ms)' % max(scroll['long']) if scroll['long'] else ''}; rows still loading at the end: {scroll['loading']}")

# A state change through the API, on the open job page.
lat = []
for k in range(runs):
    d.get(f"{base}/jobs/{job}")
    d.execute_script("""
      window.__seen = null;
      const want = arguments[0];
      new MutationObserver(() => {
        const b = document.querySelector('.job-head .badge');
        if (!window.__seen && b && b.textContent === want) window.__seen = Date.now();
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    """, "PAUSED" if k % 2 == 0 else "PENDING")
    time.sleep(1.0)
    api("POST", f"/jobs/{job}/{'pause' if k % 2 == 0 else 'resume'}")
    acked = time.time() * 1000
    for _ in range(500):
        seen = d.execute_script("return window.__seen")
        if seen:
            break
        time.sleep(0.01)
    lat.append(seen - acked if seen else float("inf"))
if runs % 2:
    api("POST", f"/jobs/{job}/resume")
print(f"state change shown {statistics.median(lat):.0f} ms after the API acknowledged it "
      f"(median of {runs}; max {max(lat):.0f} ms)")

# Long tasks while a fleet fills the farm with this job's page open.
d.get(f"{base}/jobs/{job}")
time.sleep(1.5)
d.execute_script("window.__mark = window.__kilnLongTasks.length")
print("ready for the fill", flush=True)
sys.stdin.readline()
filled = time.time()
# The page catches up: the running count it shows, and the events it took.
for _ in range(40):
    running, events = d.execute_script("const c = document.querySelector('.counts .c-running'); return [c ? c.textContent : '', window.__kilnEvents || 0]")
    if os.environ.get("KILN_UI_TRACE"):
        print(f"  +{time.time() - filled:.1f}s: {running or 'none running'}, {events} events taken", flush=True)
    time.sleep(0.25)
long = d.execute_script("return window.__kilnLongTasks.slice(window.__mark)")
print(f"during the fill and 10 s after ({running or 'none running'} shown at the end, {events} events taken): {len(long)} long tasks"
      f"{' (max %.0f ms, %d over 100 ms)' % (max(long), sum(t > 100 for t in long)) if long else ''}")
d.quit()
