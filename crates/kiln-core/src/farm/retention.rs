//! Retention: a job that finished (or was killed) long enough ago leaves
//! the farm's memory. Its records stay in the store, marked archived, so
//! `kiln history` and the history API still read every attempt; the store
//! deletes them later, after the history retention.
//!
//! The farm keeps every job in memory so that the scheduler and reads need
//! no IO; without archiving, a farm that renders for a year would hold a
//! year of jobs and their frames, and load them all at each start.

use super::*;

impl Farm {
    /// Archives the jobs that finished at or before `before` and have no
    /// attempt still winding down. Returns their ids, oldest first; the
    /// next [`Farm::take_dirty`] hands them to the store.
    pub fn archive(&mut self, before: Millis) -> Vec<JobId> {
        let busy: BTreeSet<JobId> = self.in_flight.values().map(|f| f.attempt.job).collect();
        let old: Vec<JobId> = self
            .jobs
            .values()
            .filter(|e| e.job.finished_at.is_some_and(|t| t <= before))
            .filter(|e| e.used == 0 && !busy.contains(&e.job.id))
            .map(|e| e.job.id)
            .collect();
        if old.is_empty() {
            return old;
        }
        for &id in &old {
            self.forget_job(id);
        }
        // Rows of jobs that are gone would otherwise stay in the
        // scheduler's mirror until swept; read it all again once.
        self.mirror.stale();
        self.dirty.archived.extend(old.iter().copied());
        old
    }

    /// Drops a job, its layers and frames, and what refers to them.
    fn forget_job(&mut self, id: JobId) {
        let Some(entry) = self.jobs.remove(&id) else {
            return;
        };
        for lid in &entry.layers {
            if let Some(le) = self.layers.remove(lid) {
                for fid in &le.frames {
                    self.frames.remove(fid);
                    self.dirty.frames.remove(fid);
                }
            }
            self.dirty.layers.remove(lid);
        }
        self.dirty.jobs.remove(&id);
        if let Some(k) = &entry.job.submit_key {
            self.submit_keys.remove(k);
        }
        self.fail_streaks.retain(|(j, _), _| *j != id);
        let layers: BTreeSet<LayerId> = entry.layers.iter().copied().collect();
        self.reservations.retain(|r| !layers.contains(&r.layer));
        let hosts: Vec<HostId> = self
            .hosts
            .values()
            .filter(|h| h.failed_jobs.contains(&id))
            .map(|h| h.host.id)
            .collect();
        for h in hosts {
            // Not a change of the host record: nothing to store.
            if let Some(h) = self.hosts.quiet_mut(&h) {
                h.failed_jobs.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{end, register, schedule, submit};
    use super::*;
    use crate::link::Exit;

    /// A farm with one 4-core host on session 1.
    fn farm() -> Farm {
        let mut farm = Farm::new(FarmConfig::default());
        register(&mut farm, 1, "h1", 4, vec![], 0);
        farm
    }

    #[test]
    fn finished_jobs_leave_after_their_age_and_running_ones_stay() {
        let mut farm = farm();
        let a = submit(
            &mut farm,
            "name: a\nlayers: [{name: r, command: r, frames: 1}]\n",
            0,
        );
        let started = schedule(&mut farm, 10);
        assert_eq!(started.len(), 1);
        for (att, _) in started {
            end(&mut farm, 1, att, Exit::Exited(0), 100);
        }
        assert!(farm.detail(a).unwrap().job.finished_at.is_some());
        // b depends on a and is still running when a is archived.
        let b = submit(
            &mut farm,
            &format!(
                "name: b\ndepends: [{}]\nlayers: [{{name: r, command: r, frames: 1-2}}]\n",
                a.0
            ),
            200,
        );
        let running = schedule(&mut farm, 210);
        assert_eq!(running.len(), 2, "a dependency that is done releases b");
        farm.take_dirty();

        assert!(farm.archive(99).is_empty(), "a finished at 100");
        assert_eq!(farm.archive(100), vec![a]);
        assert!(farm.detail(a).is_none());
        assert!(farm.resolve_job("a").is_err());
        assert_eq!(farm.take_dirty().archived, vec![a]);
        // b goes on: its frames end and it finishes, then leaves too.
        for (att, _) in running {
            end(&mut farm, 1, att, Exit::Exited(0), 300);
        }
        assert!(farm.archive(1_000).contains(&b));
        assert!(farm.list_jobs(true).is_empty());
        // The farm still schedules: a new job runs on the freed host.
        submit(
            &mut farm,
            "name: c\nlayers: [{name: r, command: r, frames: 1}]\n",
            400,
        );
        assert_eq!(schedule(&mut farm, 410).len(), 1);
    }

    #[test]
    fn a_killed_job_waits_for_its_frames_to_stop() {
        let mut farm = farm();
        let a = submit(
            &mut farm,
            "name: a\nlayers: [{name: r, command: r, frames: 1}]\n",
            0,
        );
        let started = schedule(&mut farm, 10);
        farm.act(Action::Kill, "a", &[], None, "admin", 20).unwrap();
        assert!(farm.archive(1_000).is_empty(), "its frame still runs");
        for (att, _) in started {
            end(
                &mut farm,
                1,
                att,
                Exit::Killed("killed by admin".into()),
                30,
            );
        }
        assert_eq!(farm.archive(1_000), vec![a]);
    }
}
