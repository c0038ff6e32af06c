//! What runs now: the frames in flight, farm-wide or on one host, for a
//! wrangler's hosts table and the stuck-frames list (the server adds when
//! each last wrote to its log, which only it knows).

use super::Farm;
use crate::model::{Attempt, FrameId};
use crate::view::{DisplayState, RunningFrame};
use crate::Result;

impl Farm {
    /// Frames running now, longest-running first: all, or those on the
    /// host `host` names (by name or id; an error if there is none), of
    /// which `keep(attempt, owner, show)` keeps some (those the caller may
    /// read, those quiet for long). It is asked before anything is built,
    /// so a filter that keeps few costs little on a full farm.
    pub fn running_frames(
        &self,
        host: Option<&str>,
        keep: impl Fn(&Attempt, &str, &str) -> bool,
    ) -> Result<Vec<RunningFrame>> {
        let only = host.map(|h| self.resolve_host(h)).transpose()?;
        let mut out: Vec<RunningFrame> = self
            .in_flight
            .values()
            .map(|f| &f.attempt)
            .filter(|a| only.is_none_or(|h| a.host == h))
            .filter_map(|a| {
                let j = &self.jobs.get(&a.job)?.job;
                if !keep(a, &j.user, &j.show) {
                    return None;
                }
                let f = self.frames.get(&a.frame)?;
                let le = self.layers.get(&f.layer)?;
                let mut frame = self.frame_info(f, &le.layer.name, DisplayState::Running, None);
                // The attempt in flight, even if the frame has moved on (it
                // was retried while this one winds down).
                frame.host = Some(a.host_name.clone());
                frame.started_at = Some(a.started_at);
                Some(RunningFrame {
                    job_id: a.job.0,
                    job: j.name.clone(),
                    show: j.show.clone(),
                    user: j.user.clone(),
                    attempt_id: a.id.0,
                    frame,
                    last_output_at: None,
                })
            })
            .collect();
        out.sort_by_key(|r| (r.frame.started_at, FrameId(r.frame.id)));
        Ok(out)
    }
}
