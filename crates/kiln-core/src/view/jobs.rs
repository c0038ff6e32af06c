//! Which jobs a listing asks for, and one page of them: the filters the CLI,
//! REST and the Python client share, and a cursor by job id so a long list
//! is walked a page at a time with no job twice and none missed.

use super::{JobStatus, JobSummary};
use crate::model::Millis;

/// A job listing's filters and page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Finished and killed jobs too (also implied by a `state` that names
    /// them).
    pub all: bool,
    pub show: Option<String>,
    pub user: Option<String>,
    pub state: Option<JobStatus>,
    /// Jobs whose name contains this.
    pub name: Option<String>,
    /// Jobs submitted at or after this time.
    pub since: Option<Millis>,
    /// Only jobs with a larger id: the last id of the previous page.
    pub after: Option<i64>,
    /// At most this many; 0: all of them.
    pub limit: u32,
}

impl JobQuery {
    /// Every job `all` says: what `kiln jobs [--all]` shows.
    pub fn every(all: bool) -> JobQuery {
        JobQuery {
            all,
            ..JobQuery::default()
        }
    }

    pub fn matches(&self, j: &JobSummary) -> bool {
        let all = self.all || self.state.is_some_and(JobStatus::is_over);
        (all || !j.status.is_over())
            && self.show.as_ref().is_none_or(|s| &j.show == s)
            && self.user.as_ref().is_none_or(|u| &j.user == u)
            && self.state.is_none_or(|s| j.status == s)
            && self
                .name
                .as_ref()
                .is_none_or(|n| j.name.contains(n.as_str()))
            && self.since.is_none_or(|s| j.submitted_at >= s)
    }

    /// The first id a page may hold.
    pub fn first_id(&self) -> i64 {
        self.after.map_or(i64::MIN, |a| a.saturating_add(1))
    }

    /// How many a page holds at most (`usize::MAX` for no limit).
    pub fn max(&self) -> usize {
        match self.limit {
            0 => usize::MAX,
            n => n as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::StateCounts;

    fn job(id: i64, show: &str, status: JobStatus) -> JobSummary {
        JobSummary {
            id,
            name: format!("shot{id}_comp"),
            facility: "local".into(),
            show: show.into(),
            shot: String::new(),
            user: "ann".into(),
            priority: 0,
            status,
            paused: false,
            counts: StateCounts::default(),
            total: 1,
            submitted_at: id * 1000,
            finished_at: None,
        }
    }

    #[test]
    fn filters_combine_and_over_jobs_need_all_or_their_state() {
        let run = job(1, "a", JobStatus::Running);
        let done = job(2, "b", JobStatus::Finished);
        assert!(JobQuery::every(false).matches(&run));
        assert!(!JobQuery::every(false).matches(&done));
        assert!(JobQuery::every(true).matches(&done));
        let by_state = JobQuery {
            state: Some(JobStatus::Finished),
            ..JobQuery::default()
        };
        assert!(by_state.matches(&done) && !by_state.matches(&run));
        let q = JobQuery {
            all: true,
            show: Some("b".into()),
            name: Some("2_co".into()),
            since: Some(2000),
            ..JobQuery::default()
        };
        assert!(q.matches(&done) && !q.matches(&run));
        assert!(!JobQuery {
            user: Some("bob".into()),
            ..JobQuery::every(true)
        }
        .matches(&run));
        assert_eq!(JobQuery::every(true).first_id(), i64::MIN);
        let next = JobQuery {
            after: Some(7),
            limit: 100,
            ..JobQuery::default()
        };
        assert_eq!((next.first_id(), next.max()), (8, 100));
    }
}
