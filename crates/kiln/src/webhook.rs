//! `kiln webhook`: make, list and delete webhooks, and read their delivery
//! log. The server does the delivering; this is its front.

use crate::fmt;
use crate::identity::utc;
use anyhow::Result;
use clap::Subcommand;
use kiln_core::event::EventKind;
use kiln_core::webhook::{DeliveryQuery, NewWebhook, WebhookInfo};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// POST the farm's events to URL from now on, signed with a secret
    /// (printed once) in the Kiln-Signature header: t=UNIX_SECONDS,v1=HEX,
    /// the HMAC-SHA256 of "{t}.{body}". Retried with backoff until the
    /// receiver answers 2xx (at least once: dedupe on Kiln-Event-Id).
    #[command(after_help = "Examples:\n  \
        kiln webhook create https://hooks.example.com/kiln --events job.finished,job.failed --show ghost\n  \
        kiln webhook create http://pipeline:8080/farm --events frame.dead --secret \"$SECRET\"")]
    Create {
        /// Where to POST: an http:// or https:// URL (https trusts the
        /// system's certificate authorities).
        url: String,
        /// Event kinds, comma-separated (job.finished,frame.dead), or `all`.
        #[arg(long, value_name = "KINDS")]
        events: String,
        /// Only this show's events (a show's wrangler may); without it, the
        /// whole farm's (farm-wide wranglers only).
        #[arg(long)]
        show: Option<String>,
        /// The signing secret, 16-256 characters (default: the server makes
        /// one).
        #[arg(long)]
        secret: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The webhooks you may manage: where they send, what, how far behind,
    /// and whether the receiver is failing.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a webhook and delete it with its delivery log.
    Delete { id: i64 },
    /// Every try of every delivery, newest first: the event, the receiver's
    /// answer and how long it took.
    Deliveries {
        /// Only this webhook's.
        id: Option<i64>,
        /// Only tries that did not deliver.
        #[arg(long)]
        failed: bool,
        /// At most this many (at most 10000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn kinds_text(w: &WebhookInfo) -> String {
    if w.kinds.is_empty() {
        "all".into()
    } else {
        let k: Vec<&str> = w.kinds.iter().map(|k| k.as_str()).collect();
        k.join(",")
    }
}

fn state(w: &WebhookInfo) -> String {
    match &w.failing {
        None => "ok".into(),
        Some(f) => format!(
            "failing since {} ({} tries): {}; next try {}",
            fmt::ago(f.since),
            f.tries,
            f.error,
            utc(f.next_try)
        ),
    }
}

pub async fn webhook(cmd: WebhookCmd, server: &str) -> Result<ExitCode> {
    let client = crate::session::connect(server).await?;
    match cmd {
        WebhookCmd::Create {
            url,
            events,
            show,
            secret,
            json,
        } => {
            let kinds = if events.trim() == "all" {
                Vec::new()
            } else {
                EventKind::parse_list(&events).map_err(|e| {
                    anyhow::anyhow!("--events: {}", e.to_string().trim_start_matches("kinds: "))
                })?
            };
            if kinds.is_empty() && events.trim() != "all" {
                anyhow::bail!(
                    "--events: name at least one kind (job.finished,frame.dead) or `all`"
                );
            }
            let made = client
                .create_webhook(&NewWebhook {
                    url,
                    kinds,
                    show,
                    secret,
                })
                .await?;
            if json {
                fmt::json(&made)?;
                return Ok(ExitCode::SUCCESS);
            }
            let w = &made.webhook;
            eprintln!(
                "webhook {} made: {} events of {} to {}",
                w.id,
                kinds_text(w),
                w.show
                    .as_deref()
                    .map_or("the whole farm".into(), |s| format!("show {s}")),
                w.url
            );
            eprintln!("its signing secret (shown once: keep it for the receiver):");
            println!("{}", made.secret);
            Ok(ExitCode::SUCCESS)
        }
        WebhookCmd::List { json } => {
            let hooks = client.webhooks().await?;
            if json {
                fmt::json(&hooks)?;
                return Ok(ExitCode::SUCCESS);
            }
            if hooks.is_empty() {
                eprintln!("no webhooks; `kiln webhook create URL --events job.finished` makes one");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = fmt::table(&[
                "ID", "URL", "EVENTS", "SHOW", "OWNER", "CREATED", "BEHIND", "STATE",
            ]);
            for w in &hooks {
                t.add_row(vec![
                    w.id.to_string(),
                    w.url.clone(),
                    kinds_text(w),
                    w.show.clone().unwrap_or_else(|| "(farm)".into()),
                    w.owner.clone(),
                    fmt::ago(w.created_at),
                    w.behind.to_string(),
                    state(w),
                ]);
            }
            fmt::print_table(&t);
            Ok(ExitCode::SUCCESS)
        }
        WebhookCmd::Delete { id } => {
            let w = client.delete_webhook(id).await?;
            println!("webhook {} to {} deleted", w.id, w.url);
            Ok(ExitCode::SUCCESS)
        }
        WebhookCmd::Deliveries {
            id,
            failed,
            limit,
            json,
        } => {
            let q = DeliveryQuery {
                webhook: id,
                failed,
                limit,
            };
            let tries = client.deliveries(&q).await?;
            if json {
                fmt::json(&tries)?;
                return Ok(ExitCode::SUCCESS);
            }
            if tries.is_empty() {
                eprintln!("no deliveries yet");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = fmt::table(&[
                "WHEN (UTC)",
                "WEBHOOK",
                "EVENT",
                "KIND",
                "TRY",
                "OUTCOME",
                "STATUS",
                "TIME",
                "ERROR",
            ]);
            for d in &tries {
                t.add_row(vec![
                    utc(d.at),
                    d.webhook.to_string(),
                    d.seq.to_string(),
                    d.kind.clone(),
                    d.attempt.to_string(),
                    d.outcome.as_str().to_string(),
                    if d.status == 0 {
                        "-".into()
                    } else {
                        d.status.to_string()
                    },
                    format!("{} ms", d.millis),
                    d.error.clone(),
                ]);
            }
            fmt::print_table(&t);
            Ok(ExitCode::SUCCESS)
        }
    }
}
