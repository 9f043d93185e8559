//! The settings of the Bulk File Upload instance (one per institution): retention and how long a
//! call waits for its recording.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connector::{ConfigError, parse_config};

fn default_retention_days() -> u32 {
    30
}

fn default_recording_wait_minutes() -> u32 {
    60
}

fn default_retention_block() -> u8 {
    1
}

/// Bulk File Upload settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkUploadConfig {
    /// Delete non-evaluated contacts after X days: call records (with their recordings) that
    /// nobody marked reviewed within this many days of their import are deleted, and uploaded
    /// files this many days after they were ingested. 0 keeps everything.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Minutes a call waits for the recording its row names; after that it gets a
    /// `recording_missing` row in the Sync Log (the recording is still attached if it comes).
    /// 0 reports a missing recording as soon as its calls file is ingested.
    #[serde(default = "default_recording_wait_minutes")]
    pub recording_wait_minutes: u32,
    /// The block of the day (US Eastern) of the daily retention run: 0 is 12am–3am, 1 is
    /// 3am–6am … 7 is 9pm–12am.
    #[serde(default = "default_retention_block")]
    pub retention_block: u8,
}

impl Default for BulkUploadConfig {
    fn default() -> Self {
        BulkUploadConfig {
            retention_days: default_retention_days(),
            recording_wait_minutes: default_recording_wait_minutes(),
            retention_block: default_retention_block(),
        }
    }
}

impl BulkUploadConfig {
    /// Parses and checks a config.
    pub fn parse(config: &Value) -> Result<BulkUploadConfig, ConfigError> {
        let c: BulkUploadConfig = parse_config(config)?;
        if c.retention_days > 3650 {
            return Err(ConfigError::new(
                "retention_days",
                "keep files at most 3650 days (10 years); 0 keeps everything",
            ));
        }
        if c.recording_wait_minutes > 7 * 24 * 60 {
            return Err(ConfigError::new(
                "recording_wait_minutes",
                "wait at most 7 days (10080 minutes) for a recording",
            ));
        }
        if c.retention_block > 7 {
            return Err(ConfigError::new(
                "retention_block",
                "blocks are 0 (12am-3am) to 7 (9pm-12am)",
            ));
        }
        Ok(c)
    }
}
