//! Team-chat notifications through a generic outgoing webhook (myxteam-style bots, Slack /
//! Mattermost / Google Chat incoming webhooks, Telegram's bot API…).
//!
//! The body is Slack-compatible `{"text": …}` unless a JSON template is configured, in which
//! `{{text}}` and `{{channel}}` become JSON-escaped strings (so they go inside quotes) and
//! `{{data}}` becomes the payload's `data` as JSON. Example for Telegram:
//! `{"chat_id": "-100123", "text": "{{text}}"}`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{post_json, wrong_payload, Channel, Delivered, Payload, SendError};

pub const NAME: &str = "chat";

/// Sends [`Payload::Chat`] to the named channel's URL, or to the default one.
pub struct ChatChannel {
    http: reqwest::Client,
    default_url: Option<String>,
    channels: BTreeMap<String, String>,
    template: Option<String>,
}

impl ChatChannel {
    /// Fails when the template does not render to JSON.
    pub fn new(
        http: reqwest::Client,
        default_url: Option<String>,
        channels: BTreeMap<String, String>,
        template: Option<String>,
    ) -> anyhow::Result<Self> {
        if let Some(t) = &template {
            render_body(
                Some(t),
                "a \"quoted\"\nline",
                Some("name"),
                &json!({"k": [1]}),
            )
            .map_err(|e| anyhow::anyhow!("chat body template: {e}"))?;
        }
        Ok(ChatChannel {
            http,
            default_url,
            channels,
            template,
        })
    }
}

/// The JSON body for one notification (see the module docs).
pub fn render_body(
    template: Option<&str>,
    text: &str,
    channel: Option<&str>,
    data: &Value,
) -> Result<Value, String> {
    let Some(template) = template else {
        return Ok(json!({ "text": text }));
    };
    let mut out = String::with_capacity(template.len() + text.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        match after[..end].trim() {
            "text" => out.push_str(&json_escape(text)),
            "channel" => out.push_str(&json_escape(channel.unwrap_or(""))),
            "data" => out.push_str(&data.to_string()),
            _ => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).map_err(|e| format!("does not render to JSON ({e})"))
}

/// A string's JSON escaping, without the surrounding quotes.
fn json_escape(s: &str) -> String {
    let quoted = Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[async_trait]
impl Channel for ChatChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, p: &Payload) -> Result<Delivered, SendError> {
        let Payload::Chat {
            channel,
            text,
            data,
        } = p
        else {
            return Err(wrong_payload(NAME, p));
        };
        // A named channel without a URL of its own goes to the default webhook
        // (ZALOFLOW_CHAT_WEBHOOK_URL), as handoffs and escalations do.
        let url = channel
            .as_ref()
            .and_then(|name| self.channels.get(name))
            .or(self.default_url.as_ref())
            .ok_or(SendError::NotConfigured { channel: NAME })?;
        let body = render_body(self.template.as_deref(), text, channel.as_deref(), data)
            .map_err(|e| SendError::permanent(format!("chat body template {e}")))?;
        post_json(&self.http, url, &[], &body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_body_is_slack_compatible() {
        assert_eq!(
            render_body(None, "hi \"x\"", Some("c"), &Value::Null).unwrap(),
            json!({"text": "hi \"x\""})
        );
    }

    #[test]
    fn template_substitutes_escaped_values_once() {
        let t = r#"{"msg": "{{text}}", "room": "{{ channel }}", "extra": {{data}}, "keep": "{{other}}"}"#;
        let body = render_body(
            Some(t),
            "line1\n\"q\" {{channel}}",
            Some("vip"),
            &json!({"id": 7}),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"msg": "line1\n\"q\" {{channel}}", "room": "vip", "extra": {"id": 7}, "keep": "{{other}}"})
        );
        assert!(render_body(Some("{\"text\": {{text}}}"), "x", None, &Value::Null).is_err());
        assert!(ChatChannel::new(
            reqwest::Client::new(),
            None,
            BTreeMap::new(),
            Some("not json".into())
        )
        .is_err());
    }
}
