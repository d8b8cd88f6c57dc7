//! Third-party task creation: `POST {task_webhook_url}` with JSON
//! `{"title","description","contact","due_at"}`.

use async_trait::async_trait;
use serde_json::json;

use super::{post_json, wrong_payload, Channel, Delivered, Payload, SendError};

pub const NAME: &str = "task";

/// Sends [`Payload::Task`].
pub struct TaskChannel {
    http: reqwest::Client,
    url: String,
}

impl TaskChannel {
    pub fn new(http: reqwest::Client, url: String) -> Self {
        TaskChannel { http, url }
    }
}

#[async_trait]
impl Channel for TaskChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, p: &Payload) -> Result<Delivered, SendError> {
        let Payload::Task {
            title,
            description,
            contact,
            due_at,
        } = p
        else {
            return Err(wrong_payload(NAME, p));
        };
        let body = json!({
            "title": title,
            "description": description,
            "contact": contact,
            "due_at": due_at,
        });
        post_json(&self.http, &self.url, &[], &body).await
    }
}
