//! The OA's connection and OAuth flows on SQLite (migration 0013). Writes go through the one
//! writer; reads of the connection use the reader pool (the sender asks about once a second).

use super::*;
use super::{insert_jobs, SqliteStore};
use crate::{NewJob, OaConnection, OauthState, Result};
use zaloflow_core::token::TokenPair;

const COLUMNS: &str =
    "oa_id, connected_at, last_refresh_at, last_refresh_error, revoked_at, revoked_reason";

crate::oa::oa_impl!(SqliteStore, sqlite, {});
