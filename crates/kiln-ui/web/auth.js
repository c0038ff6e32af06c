// Who is signed in: the session token (kept in this browser, as `kiln
// login` keeps it in ~/.config/kiln), and the rights the server reported,
// used only to show the actions a user may take. The server decides.

const KEY = 'kiln.token';
let me = null;

export function token() {
  return localStorage.getItem(KEY);
}

export function setToken(t) {
  if (t) localStorage.setItem(KEY, t);
  else localStorage.removeItem(KEY);
  me = null;
}

/** The caller as `GET /whoami` answered, once loaded. */
export function whoami() {
  return me;
}

export function setWhoami(w) {
  me = w;
}

const RANK = { viewer: 1, artist: 2, wrangler: 3, admin: 4 };

/** Whether the user holds `right` farm-wide or on `show`, as the server's policy reads grants. */
export function holds(right, show) {
  if (!me) return false;
  // Farm-wide grants cover every show; a show's grant covers that show only.
  return me.grants.some((g) => (!g.show || g.show === show) && (RANK[g.right] || 0) >= RANK[right]);
}

/** Pause, kill, retry and the like: the job's owner (an artist of its show) or its show's wrangler. */
export function mayAct(job) {
  if (!me) return false;
  return (job.user === me.user && holds('artist', job.show)) || holds('wrangler', job.show);
}

/** Locking and repairing hosts. */
export function mayWrangleHosts() {
  return holds('wrangler', null);
}
