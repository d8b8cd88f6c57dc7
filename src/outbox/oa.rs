//! The OA's connection as the outbox sees it: while a person must connect the OA again
//! (permission revoked, or a refresh Zalo refused), Zalo OA jobs wait in the queue — not
//! attempted, not dead-lettered — and staff are told once in the team chat.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::channels::Payload;
use crate::store::{JobLane, NewJob, Store};

/// Why the OA needs a person, as stored in `oa_connection.revoked_reason`.
pub const PERMISSION_REVOKED: &str = "permission_revoked";
pub const REFRESH_REFUSED: &str = "refresh_refused";

/// The staff notice: which chat channel (None: `ZALOFLOW_CHAT_WEBHOOK_URL`) and the connect
/// page's URL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OaNotice {
    pub chat_channel: Option<String>,
    pub connect_url: String,
    /// The staff's language (`ZALOFLOW_LANG`).
    pub lang: crate::i18n::Lang,
}

impl OaNotice {
    /// The notice for `reason` (one team-chat job), due at `now`.
    pub fn jobs(&self, reason: &str, now: i64) -> Vec<NewJob> {
        let why = match reason {
            PERMISSION_REVOKED => "notice.oa.revoked",
            _ => "notice.oa.refresh_refused",
        };
        let why = crate::i18n::tr(self.lang, why);
        let text = rust_i18n::t!(
            "notice.oa.paused",
            locale = self.lang.code(),
            why = why,
            url = self.connect_url
        )
        .into_owned();
        let payload = Payload::Chat {
            channel: self.chat_channel.clone(),
            text,
            data: json!({"oa": "needs_reconnect", "reason": reason, "connect_url": self.connect_url}),
        };
        vec![super::job(&payload, now, format!("oa:{reason}"))]
    }
}

/// Whether Zalo OA calls may go now, read from the store at most once a second (shared by a
/// sender's clones).
#[derive(Debug, Clone, Default)]
pub struct OaGate(Arc<Mutex<Option<(Instant, bool)>>>);

const GATE_TTL: Duration = Duration::from_secs(1);

impl OaGate {
    /// `lane` without Zalo OA calls while the OA needs a person (None: nothing to claim).
    /// When the store cannot say, calls go on (a send then fails and is retried as before).
    pub async fn narrow(&self, store: &dyn Store, lane: JobLane) -> Option<JobLane> {
        if !self.paused(store).await {
            return Some(lane);
        }
        match lane {
            JobLane::All | JobLane::NotZaloOa => Some(JobLane::NotZaloOa),
            JobLane::ZaloOa => None,
        }
    }

    /// Holds OA calls at once in this process (the inbox saw `permission_revoked`); the store
    /// is read again after a second, as usual.
    pub fn pause_now(&self) {
        *self.0.lock().expect("poisoned") = Some((Instant::now(), true));
    }

    /// Whether the OA needs a person, read from the store now (a failed OA call asks: a
    /// failure while the OA waits for a person is not the job's fault).
    pub async fn paused_fresh(&self, store: &dyn Store) -> bool {
        *self.0.lock().expect("poisoned") = None;
        self.paused(store).await
    }

    async fn paused(&self, store: &dyn Store) -> bool {
        if let Some((at, paused)) = *self.0.lock().expect("poisoned") {
            if at.elapsed() < GATE_TTL {
                return paused;
            }
        }
        let paused = match store.oa_connection().await {
            Ok(c) => c.needs_reconnect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the OA's connection");
                false
            }
        };
        *self.0.lock().expect("poisoned") = Some((Instant::now(), paused));
        paused
    }
}
