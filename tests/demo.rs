//! `zaloflow demo` as a newcomer runs it: the real binary, no account, no configuration.

use std::process::Command;

#[test]
fn the_demo_replays_the_week_with_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    // Run outside the repository: the demo must not depend on the working directory.
    let out = Command::new(env!("CARGO_BIN_EXE_zaloflow"))
        .args(["demo", "--no-color"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run zaloflow demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for seed_text in [
        // Strategy 1: time of day.
        "Chào bạn! Bắt đầu ngày mới với ưu đãi 20% cho đơn hàng sáng nay.",
        "Đã đến giờ nghỉ trưa rồi! Ghé OA để nhận voucher ăn trưa nhé.",
        "Hello! Cùng review những sản phẩm hot nhất trong ngày nào!",
        // Welcome on follow and on "Nhắn tin".
        "Chào mừng bạn đến với OA!",
        "Xin chào bạn! Bạn cần chúng mình tư vấn gì ạ?",
        // VIP: the agents hear of it; an unanswered VIP message escalates.
        "team chat #agents: ⭐ Khách VIP mới",
        "team chat #agents: ⭐ Khách VIP cần hỗ trợ",
        "team chat #supervisors: ⚠️ Quá hạn trả lời",
        // Re-activation: stage 1 and stage 2, through promotion messages — and for Bảo, who
        // unfollowed unseen, Zalo refuses the promotion (-213) and the SMS goes instead.
        "SMS → 84938111222: “Hello bạn! Dạo này bạn khỏe không? OA có nhiều ưu đãi và nội dung hay lắm, ghé thăm mình nhé!”",
        "OA → Châu [Zalo promotion]: “Ưu đãi dành riêng cho bạn! Giảm 30% cho đơn hàng đầu tiên trong tuần này.”",
        // The form registration enters the drip: day 0, day 1, day 3 emails, SMS.
        "email → hoa.le@example.vn: “Cảm ơn Hoa Lê đã đăng ký!”",
        "email → hoa.le@example.vn: “Bí quyết chọn sản phẩm phù hợp cho bạn”",
        "email → hoa.le@example.vn: “Ưu đãi cuối tuần dành riêng cho Hoa Lê”",
        "SMS → 84903123456",
        // The VIP's birthday gift.
        "Chúc mừng sinh nhật Minh Trần!",
    ] {
        assert!(
            stdout.contains(seed_text),
            "missing {seed_text:?} in:\n{stdout}"
        );
    }
    // Nothing answered the 15:00 message.
    let after_15 = stdout.split("Mon 15:00").nth(1).unwrap();
    let next_line = after_15.lines().nth(1).unwrap_or_default();
    assert!(!next_line.contains("OA → Huy"), "{next_line}");
    assert!(stdout.contains("Summary:"), "{stdout}");
    // The week's cost: the promotions of re-activation are paid; the replies within 48 h free.
    let cost = stdout
        .lines()
        .find(|l| l.contains("Cost: "))
        .unwrap_or_else(|| panic!("no cost line: {stdout}"));
    assert!(cost.contains(" VND for "), "{cost}");
    assert!(
        cost.contains("consultation messages in Zalo's free tier"),
        "{cost}"
    );
    assert!(cost.contains("Costliest rules: "), "{cost}");
    assert!(stdout.contains("0 dead letters"), "{stdout}");
    // Headings say what happens under them: the step that says Bảo and Châu have gone quiet
    // is the one their re-activations go out under (up to the next heading or step).
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("Bảo has been quiet"))
        .expect("a step says Bảo has gone quiet");
    let quiet = lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with(' '))
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(quiet.contains("SMS → 84938111222"), "{quiet}");
    assert!(!quiet.contains("OA → Bảo"), "{quiet}");
    assert!(
        quiet.contains("✗ Bảo (kich_hoat_giai_doan_1): Zalo refused it")
            && quiet.contains("-213")
            && quiet.contains("sent instead: an SMS to 84938111222"),
        "{quiet}"
    );
    assert!(quiet.contains("OA → Châu [Zalo promotion]"), "{quiet}");
}

/// Logs written to a file or a pipe carry no colour codes (only a terminal gets them).
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zaloflow"))
        .args(["demo", "--no-color"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .output()
        .expect("run zaloflow demo");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().count() > 10, "the service logged: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "colour codes in a piped log");
}
