//! The channels of a forecast: they send nothing. A send through a channel the deployment
//! lacks is refused as the real one refuses it (skipped, `not_configured`); every other send
//! is taken as delivered — a forecast cannot know which deliveries would have failed.

use async_trait::async_trait;

use crate::channels::configured::Configured;
use crate::channels::{Channel, Delivered, Payload, SendError};

pub struct DryChannel {
    configured: Configured,
}

impl DryChannel {
    pub fn new(configured: Configured) -> DryChannel {
        DryChannel { configured }
    }
}

#[async_trait]
impl Channel for DryChannel {
    fn name(&self) -> &'static str {
        "forecast"
    }

    async fn send(&self, p: &Payload) -> Result<Delivered, SendError> {
        if let Some(m) = self.configured.missing(p).filter(|m| m.skips) {
            return Err(SendError::NotConfigured { channel: m.channel });
        }
        Ok(Delivered {
            provider_id: Some("forecast".into()),
            detail: serde_json::json!({"forecast": true}),
        })
    }
}
