//! Which outbound channels a deployment has configured, as plain data: the wiring builds it from
//! the configuration, the rule checker turns it into findings (`path:line:col` and the variable
//! to set), and the engine records a send whose channel is missing as *skipped* instead of
//! queueing a job that could only be dead-lettered.

use std::collections::BTreeSet;

use super::Payload;

/// The channels of one deployment (what the environment and `zaloflow.toml` set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    /// `ZALOFLOW_SMS_URL`
    pub sms: bool,
    /// `ZALOFLOW_SMTP_URL`
    pub email: bool,
    /// `ZALOFLOW_TASK_WEBHOOK_URL`
    pub task: bool,
    /// `ZALOFLOW_CHAT_WEBHOOK_URL`: every chat channel without a URL of its own goes there.
    pub chat_default: bool,
    /// The names of `ZALOFLOW_CHAT_CHANNELS`.
    pub chat_named: BTreeSet<String>,
    /// The OA's tokens: `ZALO_ACCESS_TOKEN`/`ZALO_REFRESH_TOKEN`, or a pair kept in the database.
    pub zalo_tokens: bool,
    /// `ZALOFLOW_PUBLIC_URL` was set (not the `http://localhost:8080` default).
    pub public_url: bool,
}

/// The reason code of a send skipped because its channel is not configured (the `reason` label
/// of `zaloflow_jobs_skipped_total`, the `skip_reason` of the outbox row).
pub const NOT_CONFIGURED: &str = "not_configured";

/// A channel a send needs and the deployment lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// `sms`, `email`, `chat`, `task`, `zalo`, `zns`.
    pub channel: &'static str,
    /// What cannot go out, in words (`SMS`, `team-chat channel "agents"`…).
    pub what: String,
    /// What to set, for a shop owner.
    pub fix: String,
    /// Whether the send is recorded as skipped (false: it goes out, but wrong, e.g. email
    /// links to localhost).
    pub skips: bool,
    /// Which setting is missing: the key of its words for staff (`rules.missing.KEY` in
    /// `locales/rules.yml`), and the chat channel's name.
    pub key: &'static str,
    pub name: Option<String>,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not configured: {}", self.what, self.fix)
    }
}

impl Missing {
    /// What is missing and what to set, for staff in `lang` (the `Display` is English).
    pub fn text(&self, lang: crate::i18n::Lang) -> String {
        if lang == crate::i18n::Lang::En {
            return self.to_string();
        }
        let name = self.name.as_deref().unwrap_or_default();
        let key = format!("rules.missing.{}", self.key);
        rust_i18n::replace_patterns(&crate::i18n::tr(lang, &key), &["name"], &[name.to_string()])
    }
}

impl Configured {
    /// Every channel configured (tests and tools that do not check).
    pub fn all() -> Configured {
        Configured {
            sms: true,
            email: true,
            task: true,
            chat_default: true,
            chat_named: BTreeSet::new(),
            zalo_tokens: true,
            public_url: true,
        }
    }

    /// Every channel but team chat (tests).
    pub fn all_but_chat() -> Configured {
        Configured {
            chat_default: false,
            ..Configured::all()
        }
    }

    pub fn sms(&self) -> Option<Missing> {
        (!self.sms).then(|| Missing {
            channel: super::sms::NAME,
            what: "SMS".into(),
            fix: "set ZALOFLOW_SMS_URL to your SMS gateway's URL".into(),
            skips: true,
            key: "sms",
            name: None,
        })
    }

    pub fn email(&self) -> Option<Missing> {
        (!self.email).then(|| Missing {
            channel: super::email::NAME,
            what: "email".into(),
            fix: "set ZALOFLOW_SMTP_URL (smtp://user:password@host:587)".into(),
            skips: true,
            key: "email",
            name: None,
        })
    }

    pub fn task(&self) -> Option<Missing> {
        (!self.task).then(|| Missing {
            channel: super::task::NAME,
            what: "task creation".into(),
            fix: "set ZALOFLOW_TASK_WEBHOOK_URL to your task tool's webhook".into(),
            skips: true,
            key: "task",
            name: None,
        })
    }

    /// A team-chat notification to `name` (None: the default webhook).
    pub fn chat(&self, name: Option<&str>) -> Option<Missing> {
        if self.chat_default || name.is_some_and(|n| self.chat_named.contains(n)) {
            return None;
        }
        Some(Missing {
            channel: super::chat::NAME,
            what: match name {
                Some(n) => format!("team-chat channel {n:?}"),
                None => "team chat".into(),
            },
            fix: match name {
                Some(n) => format!(
                    "set ZALOFLOW_CHAT_WEBHOOK_URL (used by every chat channel) or ZALOFLOW_CHAT_CHANNELS={n}=https://…"
                ),
                None => "set ZALOFLOW_CHAT_WEBHOOK_URL to your team chat's webhook".into(),
            },
            skips: true,
            key: if name.is_some() { "chat_named" } else { "chat" },
            name: name.map(str::to_string),
        })
    }

    /// Zalo OA messages (`zns`: template messages) need the OA's tokens.
    pub fn zalo(&self, zns: bool) -> Option<Missing> {
        (!self.zalo_tokens).then(|| Missing {
            channel: if zns { super::zns::NAME } else { super::zalo::NAME },
            what: if zns {
                "the OA's connection (its tokens) for template (ZNS) messages"
            } else {
                "the OA's connection (its tokens)"
            }
            .into(),
            fix: "connect the OA at /admin/zalo/connect, or set ZALO_APP_ID, ZALO_APP_SECRET, ZALO_ACCESS_TOKEN and ZALO_REFRESH_TOKEN".into(),
            skips: true,
            key: if zns { "zns" } else { "zalo" },
            name: None,
        })
    }

    /// Tracked email links point at `ZALOFLOW_PUBLIC_URL`.
    pub fn public_url(&self) -> Option<Missing> {
        (!self.public_url).then(|| Missing {
            channel: super::email::NAME,
            what: "the public address of email tracking links".into(),
            fix: "set ZALOFLOW_PUBLIC_URL to the address customers reach this service at (https://…); until then the emails go out with links to http://localhost:8080".into(),
            skips: false,
            key: "public_url",
            name: None,
        })
    }

    /// Why `payload` cannot be sent now, for the channels decided when a send is planned.
    /// Zalo and ZNS sends are left to the sender: the OA's tokens may arrive (connect) while
    /// the service runs, and a send without them is recorded as skipped then.
    pub fn missing(&self, payload: &Payload) -> Option<Missing> {
        match payload {
            Payload::Sms { .. } => self.sms(),
            Payload::Email { .. } => self.email(),
            Payload::Task { .. } => self.task(),
            Payload::Chat { channel, .. } => self.chat(channel.as_deref()),
            Payload::Zalo { .. } | Payload::ZaloTag { .. } | Payload::Zns { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_chat_channels_fall_back_to_the_default_webhook() {
        let mut c = Configured::default();
        let m = c.chat(Some("agents")).unwrap();
        assert!(m.to_string().contains("ZALOFLOW_CHAT_WEBHOOK_URL"), "{m}");
        assert!(m.to_string().contains("agents"), "{m}");
        c.chat_named.insert("agents".into());
        assert!(c.chat(Some("agents")).is_none());
        assert!(c.chat(Some("supervisors")).is_some());
        assert!(c.chat(None).is_some());
        c.chat_default = true;
        assert!(c.chat(Some("supervisors")).is_none());
        assert!(c.chat(None).is_none());
    }

    #[test]
    fn zalo_sends_are_left_to_the_sender() {
        let c = Configured::default();
        let p = Payload::Zalo {
            user_id: "1".into(),
            kind: Default::default(),
            text: Some("hi".into()),
            attachment: None,
        };
        assert!(c.missing(&p).is_none());
        assert!(c.zalo(false).is_some());
        let sms = Payload::Sms {
            to: "84".into(),
            text: "x".into(),
        };
        assert_eq!(c.missing(&sms).unwrap().channel, "sms");
        assert!(Configured::all().missing(&sms).is_none());
    }
}
