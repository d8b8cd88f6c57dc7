//! Rebuilds when a migration is added or changed: `sqlx::migrate!` embeds the repository's
//! `migrations/` at compile time, and cargo cannot tell by itself that a new file there matters.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
