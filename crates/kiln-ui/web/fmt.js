// Numbers as people read them: durations, sizes, times in the viewer's
// own time zone.

/** 2h 14m, 3m 05s, 12s, 340 ms. */
export function duration(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return '';
  ms = Math.max(0, ms);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** Kibibytes as 512 KiB, 12.4 GiB. */
export function kib(kb) {
  if (kb === null || kb === undefined) return '';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = kb, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const sameDay = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const otherDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' });

/** A moment (ms since the epoch) in the viewer's zone: the time alone if today. */
export function time(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  return (d.toDateString() === new Date().toDateString() ? sameDay : otherDay).format(d);
}

/** The full date and zone, for a tooltip. */
export function fullTime(ms) {
  return ms ? full.format(new Date(ms)) : '';
}

/** 1,234,567 in the viewer's grouping. */
export function count(n) {
  return (n ?? 0).toLocaleString();
}
