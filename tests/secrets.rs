//! Secrets and access tokens never appear in logs: a full demo run at debug level, grepped.

use std::process::Command;

#[test]
fn no_secret_in_the_logs_of_a_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zaloflow"))
        .args(["demo", "--no-color"])
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .output()
        .expect("run zaloflow demo");
    assert!(out.status.success());
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.lines().count() > 50, "expected a debug log:\n{all}");
    let defaults = zaloflow::fakes::zalo::FakeZaloOptions::default();
    for secret in [
        zaloflow::demo::OA_SECRET_KEY,
        zaloflow::demo::ADMIN_TOKEN,
        defaults.app_secret.as_str(),
        // Access and refresh tokens the fake issued (fake-access-0, fake-refresh-0, -1, …).
        "fake-access-",
        "fake-refresh-",
    ] {
        let hit = all.lines().find(|l| l.contains(secret));
        assert!(hit.is_none(), "secret {secret:?} logged: {}", hit.unwrap());
    }
    // The log went to a pipe, not a terminal: plain text, no colour codes.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let coloured = stderr.lines().find(|l| l.contains('\x1b'));
    assert!(
        coloured.is_none(),
        "colour codes in a piped log: {coloured:?}"
    );
}

/// Logs and the demo's timeline written to a pipe or a file carry no colour codes, without
/// `--no-color` or `NO_COLOR`: colour is for terminals only (issue 30).
#[test]
fn output_to_a_pipe_or_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("zaloflow.log");
    let out = Command::new(env!("CARGO_BIN_EXE_zaloflow"))
        .arg("demo")
        .current_dir(dir.path())
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .output()
        .expect("run zaloflow demo");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(stdout.lines().count() > 20, "{stdout}");
    assert!(stderr.lines().count() > 5, "expected a log: {stderr}");
    for (what, text) in [("stdout (a pipe)", &stdout), ("stderr (a file)", &stderr)] {
        let coloured = text.lines().find(|l| l.contains("\x1b["));
        assert!(coloured.is_none(), "colour codes in {what}: {coloured:?}");
    }
}
