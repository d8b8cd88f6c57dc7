//! Rebuilds when a migration is added or changed: `sqlx::migrate!` embeds `migrations/` at
//! compile time, and cargo cannot tell by itself that a new file there matters (sqlx's own
//! advice; without it a build could keep the previous set, and `zaloflow migrate` would then
//! refuse a database a newer build had migrated).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
