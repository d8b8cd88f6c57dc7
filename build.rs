//! Rebuilds the application when a translation changes: rust-i18n reads `locales/*.yml` inside
//! its macro (src/lib.rs), which cargo does not track by itself.
fn main() {
    println!("cargo:rerun-if-changed=locales");
}
