//! The host-wide memory guard: when the host's available memory falls
//! below a threshold, the frame furthest over its reservation is killed
//! first (and reported out of memory, so the server retries it with more),
//! one at a time, before the kernel's OOM killer picks a victim at random or
//! the host starts to swap.

use kiln_core::model::AttemptId;

/// The default threshold: 5 % of the host's memory, between 128 MiB and
/// 1 GiB.
pub fn default_min_available_kb(total_kb: u64) -> u64 {
    (total_kb / 20).clamp(128 << 10, 1 << 20)
}

/// A running frame as the guard sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub attempt: AttemptId,
    pub rss_kb: u64,
    /// Its reservation; `None`: it reserved nothing, so all it uses is over.
    pub reserved_kb: Option<u64>,
}

/// The frame to kill when the host has `available_kb` left against a
/// threshold of `min_available_kb`: the one furthest over its reservation
/// (ties: the lowest attempt id). `None` while memory suffices, or if no
/// frame is over its reservation: then what eats the memory is not a frame
/// that broke its promise.
pub fn victim(available_kb: u64, min_available_kb: u64, frames: &[Candidate]) -> Option<AttemptId> {
    if min_available_kb == 0 || available_kb >= min_available_kb {
        return None;
    }
    frames
        .iter()
        .filter_map(|c| {
            let over = c.rss_kb.checked_sub(c.reserved_kb.unwrap_or(0))?;
            (over > 0).then_some((over, std::cmp::Reverse(c.attempt), c.attempt))
        })
        .max()
        .map(|(_, _, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(a: i64, rss_mb: u64, reserved_mb: Option<u64>) -> Candidate {
        Candidate {
            attempt: AttemptId(a),
            rss_kb: rss_mb << 10,
            reserved_kb: reserved_mb.map(|m| m << 10),
        }
    }

    #[test]
    fn kills_the_frame_furthest_over_its_reservation_only_when_short() {
        let frames = [
            c(1, 900, Some(1000)), // the largest, but within its reservation
            c(2, 600, Some(400)),  // 200 over
            c(3, 300, None),       // reserved nothing: 300 over
            c(4, 450, Some(150)),  // 300 over, a later attempt than 3
        ];
        assert_eq!(
            victim(2_000 << 10, 1 << 20, &frames),
            None,
            "memory suffices"
        );
        assert_eq!(victim(100 << 10, 0, &frames), None, "guard off");
        assert_eq!(victim(100 << 10, 1 << 20, &frames), Some(AttemptId(3)));
        assert_eq!(victim(100 << 10, 1 << 20, &frames[..2]), Some(AttemptId(2)));
        // Nobody over: the guard does not pick a frame that kept its word.
        assert_eq!(victim(100 << 10, 1 << 20, &frames[..1]), None);
        assert_eq!(default_min_available_kb(8 << 20), (8 << 20) / 20);
        assert_eq!(default_min_available_kb(1 << 20), 128 << 10);
        assert_eq!(default_min_available_kb(512 << 20), 1 << 20);
    }
}
