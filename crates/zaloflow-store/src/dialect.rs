//! How one statement serves both backends. A statement is written once, with PostgreSQL's
//! `$N` placeholders ([`sqlite`] turns them into SQLite's `?N`), in the area module that owns
//! it; an area trait is implemented for both stores by one `macro_rules!` whose body names the
//! backend (`sqlite` or `postgres`) where it has to, through the hooks below:
//!
//! - `sql!(db, STATEMENT)`: the statement in the backend's dialect ([`sqlite`]);
//! - `list!(db, values)`, `list!(db, opt values)`: a list (or `Option` of one) bound to
//!   `= ANY($N)`;
//! - `pick!(db, sqlite: A, postgres: B)`: where the dialects really differ (`json_each` against
//!   `= ANY($1)`, `MAX` against `GREATEST`…);
//! - `reader!(db, self)`: the pool that reads (SQLite's reader pool);
//! - `writer!(db, self)`: where a single write goes (SQLite's one writer connection, in turn);
//! - `begin_write!(db, self, tx)`: a write transaction `tx` (on SQLite, in the writer's turn);
//! - `claim_lock!(db, tx, KEY)`: the advisory lock a claim takes first (PostgreSQL only).
//!
//! The same idea as vaultwarden's `db_run!` (one body, expanded per backend), kept to
//! `macro_rules!` and plain strings: no query builder between the SQL and the reader, and
//! what only one backend does (SQLite's intake and claims, PostgreSQL's bulk upserts and
//! advisory locks) stays in `sqlite/` and `postgres/`.

/// The statement for SQLite, from the one written for PostgreSQL:
///
/// - `= ANY($N)` (a bound list) becomes `IN (SELECT value FROM json_each(?N))`, the list bound
///   as a JSON array (`list!`);
/// - `GREATEST(` becomes SQLite's scalar `MAX(`, `strpos(` its `instr(` (same arguments),
///   `ILIKE` its `LIKE` (ASCII case-insensitive);
/// - row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`) go: SQLite's one writer holds the
///   whole database for the transaction;
/// - casts of parameters (`::text`, `::text[]`, `::bool`, `::bigint`) go: SQLite has no types
///   to give them;
/// - `$N` becomes `?N`.
///
/// Only for statements without a `$` of their own (JSON paths are SQLite's alone and are
/// written for it).
pub(crate) fn sqlite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut rest = sql;
    while let Some(at) = rest.find("= ANY($") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "= ANY(".len()..];
        let end = after.find(')').expect("= ANY($N) closes");
        out.push_str("IN (SELECT value FROM json_each(");
        out.push_str(&after[..end]);
        out.push_str("))");
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    for lock in [" FOR UPDATE SKIP LOCKED", " FOR UPDATE"] {
        while let Some(at) = out.find(lock.trim_start()) {
            let start = out[..at].trim_end().len();
            out.replace_range(start..at + lock.trim_start().len(), "");
        }
    }
    for cast in ["::text[]", "::text", "::bool", "::bigint"] {
        out = out.replace(cast, "");
    }
    out.replace("GREATEST(", "MAX(")
        .replace("strpos(", "instr(")
        .replace("ILIKE", "LIKE")
        .replace('$', "?")
}

macro_rules! sql {
    (sqlite, $q:expr) => {
        &$crate::dialect::sqlite(&$q)
    };
    (postgres, $q:expr) => {
        &$q
    };
}

/// A list bound to `= ANY($N)`: the slice itself for PostgreSQL, a JSON array for SQLite.
macro_rules! list {
    (sqlite, $v:expr) => {
        serde_json::to_string(&$v).expect("strings serialise")
    };
    (postgres, $v:expr) => {
        $v
    };
    (sqlite, opt $v:expr) => {
        $v.map(|v| serde_json::to_string(v).expect("strings serialise"))
    };
    (postgres, opt $v:expr) => {
        $v
    };
}

/// A claim's transaction-scoped advisory lock (`$key`) on PostgreSQL, so two instances never
/// split one user's lane; nothing on SQLite, where the claim holds the one writer.
macro_rules! claim_lock {
    (sqlite, $tx:ident, $key:expr) => {};
    (postgres, $tx:ident, $key:expr) => {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind($key)
            .execute(&mut *$tx)
            .await?;
    };
}

macro_rules! pick {
    (sqlite, sqlite: $a:expr, postgres: $b:expr $(,)?) => {
        $a
    };
    (postgres, sqlite: $a:expr, postgres: $b:expr $(,)?) => {
        $b
    };
}

macro_rules! reader {
    (sqlite, $s:ident) => {
        &$s.reader
    };
    (postgres, $s:ident) => {
        &$s.pool
    };
}

macro_rules! writer {
    (sqlite, $s:ident) => {
        &mut *$s.write_lock().await?
    };
    (postgres, $s:ident) => {
        &$s.pool
    };
}

macro_rules! begin_write {
    (sqlite, $s:ident, $tx:ident) => {
        let mut turn = $s.write_lock().await?;
        let mut $tx = turn.begin().await?;
    };
    (postgres, $s:ident, $tx:ident) => {
        let mut $tx = $s.pool.begin().await?;
    };
}

#[cfg(test)]
mod tests {
    use super::sqlite;

    #[test]
    fn statements_become_sqlites() {
        assert_eq!(
            sqlite("SELECT 1 WHERE a = $1 AND b = $12"),
            "SELECT 1 WHERE a = ?1 AND b = ?12"
        );
        assert_eq!(
            sqlite("DELETE FROM t WHERE k = ANY($2) AND n = $1"),
            "DELETE FROM t WHERE k IN (SELECT value FROM json_each(?2)) AND n = ?1"
        );
        assert_eq!(
            sqlite("SET n = GREATEST(n - 1, 0) WHERE ($1::text IS NULL OR x ILIKE $1)"),
            "SET n = MAX(n - 1, 0) WHERE (?1 IS NULL OR x LIKE ?1)"
        );
        assert_eq!(
            sqlite("($3::text[] IS NULL OR c = ANY($3)) AND ($4::bool IS NULL)"),
            "(?3 IS NULL OR c IN (SELECT value FROM json_each(?3))) AND (?4 IS NULL)"
        );
        assert_eq!(
            sqlite("WHERE id IN (SELECT id FROM t LIMIT $4\n      FOR UPDATE SKIP LOCKED)"),
            "WHERE id IN (SELECT id FROM t LIMIT ?4)"
        );
        assert_eq!(
            sqlite("SELECT a FROM t WHERE b = $1 FOR UPDATE"),
            "SELECT a FROM t WHERE b = ?1"
        );
    }
}
