//! The OA's connection and OAuth flows on PostgreSQL (migration 0013).

use super::*;
use super::{insert_jobs, PgStore};
use crate::{NewJob, OaConnection, OauthState, Result};
use zaloflow_core::token::TokenPair;

const COLUMNS: &str =
    "oa_id, connected_at, last_refresh_at, last_refresh_error, revoked_at, revoked_reason";

crate::oa::oa_impl!(PgStore, postgres, {});
