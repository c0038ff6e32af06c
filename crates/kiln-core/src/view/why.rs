//! Why waiting frames wait, as clients see it: a kind to act on, what it
//! names, and the words `kiln job` and `kiln frames` print.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What holds a waiting frame back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhyKind {
    /// A job, layer or frame dependency is not met yet (state DEPEND).
    Depend,
    JobPaused,
    LayerPaused,
    /// Its job's show is disabled (`name`: the show).
    ShowDisabled,
    /// Its previous attempt is still being stopped.
    Stopping,
    /// No host of its facility is up and open (`name`: the facility).
    NoHosts,
    /// Every host that could run it is busy.
    Busy,
    /// No host it may use has the resources or tags it asks for.
    NoFit,
    /// Hosts that could run it exist but are locked, down or in repair.
    HostsUnavailable,
    /// Every host that could run it is one its job avoids after failures.
    Avoided,
    /// Its show is at its burst, or its subscriptions are used up
    /// (`name`: the show).
    Share,
    /// Its show has no subscription to the allocation whose hosts could run
    /// it (`name`: "show/allocation"; neither name can hold a '/').
    NotSubscribed,
    /// A limit is at its maximum (`name`: the limit).
    Limit,
    /// Its job holds its max cores.
    JobCap,
    /// A host is being freed for it (`name`: the host).
    Reserved,
}

impl WhyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WhyKind::Depend => "depend",
            WhyKind::JobPaused => "job_paused",
            WhyKind::LayerPaused => "layer_paused",
            WhyKind::ShowDisabled => "show_disabled",
            WhyKind::Stopping => "stopping",
            WhyKind::NoHosts => "no_hosts",
            WhyKind::Busy => "busy",
            WhyKind::NoFit => "no_fit",
            WhyKind::HostsUnavailable => "hosts_unavailable",
            WhyKind::Avoided => "avoided",
            WhyKind::Share => "share",
            WhyKind::NotSubscribed => "not_subscribed",
            WhyKind::Limit => "limit",
            WhyKind::JobCap => "job_cap",
            WhyKind::Reserved => "reserved",
        }
    }

    pub fn parse(s: &str) -> Option<WhyKind> {
        use WhyKind::*;
        [
            Depend,
            JobPaused,
            LayerPaused,
            ShowDisabled,
            Stopping,
            NoHosts,
            Busy,
            NoFit,
            HostsUnavailable,
            Avoided,
            Share,
            NotSubscribed,
            Limit,
            JobCap,
            Reserved,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Why frames wait: a kind, what it names, and the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Why {
    pub kind: WhyKind,
    /// The show, limit, host or facility the reason names, if any.
    pub name: Option<String>,
    /// The reason as `kiln job` and `kiln frames` print it.
    pub text: String,
}

impl Why {
    /// The reason, its words made from the kind and the name.
    pub fn new(kind: WhyKind, name: Option<String>) -> Why {
        let n = name.as_deref().unwrap_or("?");
        let text = match kind {
            WhyKind::Depend => "waiting for a dependency".to_owned(),
            WhyKind::JobPaused => "job paused".to_owned(),
            WhyKind::LayerPaused => "layer paused".to_owned(),
            WhyKind::ShowDisabled => format!("show {n} is disabled"),
            WhyKind::Stopping => "its last attempt is still stopping".to_owned(),
            WhyKind::NoHosts => format!("no host of facility {n} is up"),
            WhyKind::Busy => "waiting for a free host".to_owned(),
            WhyKind::NoFit => "no host has the resources/tags it asks for".to_owned(),
            WhyKind::HostsUnavailable => "hosts that fit are locked/down/in repair".to_owned(),
            WhyKind::Avoided => {
                "its job avoids the hosts that fit, after failures there".to_owned()
            }
            WhyKind::Share => format!("show {n} at its burst/subscription exhausted"),
            WhyKind::NotSubscribed => {
                let (show, alloc) = n.split_once('/').unwrap_or((n, "ALLOC"));
                format!(
                    "show {show} is not subscribed to allocation {alloc}, where the hosts that fit are: \
                     kiln sub set {show} {alloc} --size N --burst N"
                )
            }
            WhyKind::Limit => format!("limit {n} at its maximum"),
            WhyKind::JobCap => "job at its max cores".to_owned(),
            WhyKind::Reserved => format!("host {n} reserved for it"),
        };
        Why { kind, name, text }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
