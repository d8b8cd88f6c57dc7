//! Contact lists: changes, members, joins. (PostgreSQL).

use super::*;

crate::lists::lists_impl!(PgStore, postgres, {});
