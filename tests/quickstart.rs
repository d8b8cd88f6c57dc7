//! The README's quick start, word for word, on a fresh clone: the commands are read from the
//! README's first `sh` block (there must be exactly two), the committed repository is cloned
//! into an empty folder, and each command runs there through `sh -c` as a newcomer would type
//! it. Nothing else is prepared: no database, no configuration, no environment variable of the
//! product.
//!
//! Two concessions keep this inside the CI budget, both outside the commands themselves:
//! - the clone builds into this suite's own target folder (`CARGO_TARGET_DIR`), so
//!   dependencies compiled once are not compiled again (the clone's own crate is);
//! - the second command is the whole test suite, which cannot run inside itself: it runs with
//!   `ZALOFLOW_TEST_ONLY="--test deploy"`, which `scripts/test` documents — every setup step
//!   (PostgreSQL, the test databases, Chromium, the SMTP server) runs as on a fresh machine,
//!   then `cargo test` runs that one test file instead of all of them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The commands of the README's first `sh` block, comments dropped.
fn quick_start(readme: &str) -> Vec<String> {
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("the README has a ```sh block")
        .split("```")
        .next()
        .unwrap();
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// This suite's target folder (`…/target`), from where cargo put the binary.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_zaloflow"))
        .parent()
        .and_then(Path::parent)
        .expect("target folder")
        .to_path_buf()
}

fn run(cmd: &str, dir: &Path, extra_env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("sh");
    c.args(["-c", cmd])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        // What the product reads: a newcomer has none of it set.
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env_remove("ZALOFLOW_RULES");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_readme_quick_start_works_word_for_word_on_a_fresh_clone() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let commands = quick_start(&readme);
    assert_eq!(
        commands,
        ["cargo run -- demo", "scripts/test"],
        "the README opens with the two commands"
    );
    // `.ci/run` calls exactly the README's test command.
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines()
            .any(|l| l.trim() == format!("exec {}", commands[1])),
        ".ci/run must exec {}:\n{ci}",
        commands[1]
    );

    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("zaloflow");
    let out = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(repo())
        .arg(&clone)
        .output()
        .unwrap();
    assert!(out.status.success(), "git clone: {}", text(&out));

    // 1. The product, on its embedded default: the scripted week, then the summary.
    let out = run(&commands[0], &clone, &[]);
    let demo = text(&out);
    assert!(out.status.success(), "{}:\n{demo}", commands[0]);
    for expected in [
        "Chào mừng bạn đến với OA!",
        "team chat #supervisors",
        "Summary:",
        "0 dead letters",
    ] {
        assert!(demo.contains(expected), "missing {expected:?}:\n{demo}");
    }
    println!(
        "{}: {} lines of timeline",
        commands[0],
        String::from_utf8_lossy(&out.stdout).lines().count()
    );
    // It left nothing behind in the clone: the demo's database is temporary.
    let status = Command::new("git")
        .args(["status", "--porcelain", "--ignored"])
        .current_dir(&clone)
        .output()
        .unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&status.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "the demo left files behind: {left:?}");

    // 2. The test suite: its setup as on a fresh machine, then one test file.
    let out = run(
        &commands[1],
        &clone,
        &[("ZALOFLOW_TEST_ONLY", "--test deploy")],
    );
    let suite = text(&out);
    assert!(out.status.success(), "{}:\n{suite}", commands[1]);
    assert!(suite.contains("test result: ok"), "{suite}");
    println!("{}: passed in the clone", commands[1]);
}
