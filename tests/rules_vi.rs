//! `rules check` speaks Vietnamese (issue 30): the staff's common mistakes are told in
//! Vietnamese with their line and column by default, in English with `ZALOFLOW_LANG=en`, and
//! neither screen holds the other language's words (`common/i18n.rs`).

#[path = "common/i18n.rs"]
mod i18n_check;

use std::path::{Path, PathBuf};
use std::process::Command;

use zaloflow::i18n::Lang;
use zaloflow::rules::{load_sources, Diagnostic, LoadOptions};

fn manifest(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The problems of one file, loaded with the product's defaults (Vietnamese) or in `lang`.
fn problems(src: &str, lang: Option<Lang>) -> Vec<Diagnostic> {
    let opts = match lang {
        Some(lang) => LoadOptions {
            lang,
            ..LoadOptions::default()
        },
        None => LoadOptions::default(),
    };
    match load_sources(&[(PathBuf::from("t.yaml"), src.to_string())], &opts) {
        Ok(_) => panic!("no problem found in:\n{src}"),
        Err(d) => d,
    }
}

/// The one problem of `src`, by default (Vietnamese), as `rules check` shows it.
fn one_vi(src: &str) -> (Diagnostic, String) {
    let d = problems(src, None);
    assert_eq!(d.len(), 1, "{d:#?}");
    let shown = d[0].render(Lang::Vi);
    i18n_check::assert_one_language(&shown, Lang::Vi);
    (d[0].clone(), shown)
}

#[test]
fn a_colon_in_a_send_text_is_explained_in_vietnamese_with_the_line_written_right() {
    let src = "rules:\n  - id: chao\n    when: message\n    do:\n      - send: Voucher cho bạn: mã TRUA50\n";
    let (d, shown) = one_vi(src);
    assert_eq!((d.pos.line, d.pos.col), (5, 30));
    assert!(
        shown.starts_with("t.yaml, dòng 5, cột 30: lỗi cú pháp YAML: "),
        "{shown}"
    );
    assert!(
        shown.contains(
            "đoạn chữ có dấu hai chấm và dấu cách (`: `) phải đặt trong dấu ngoặc kép hoặc viết thành khối với `|`"
        ),
        "{shown}"
    );
    assert!(
        shown.ends_with("\n    - send: \"Voucher cho bạn: mã TRUA50\""),
        "{shown}"
    );
    // English on request: the same place, the same fixed line.
    let en = problems(src, Some(Lang::En));
    let en = en[0].render(Lang::En);
    assert!(en.starts_with("t.yaml:5:30: YAML syntax: "), "{en}");
    assert!(
        en.contains("must be in quotes or written as a block with `|`"),
        "{en}"
    );
    assert!(
        en.ends_with("- send: \"Voucher cho bạn: mã TRUA50\""),
        "{en}"
    );
    i18n_check::assert_one_language(&en, Lang::En);
}

#[test]
fn a_quote_inside_quotes_is_explained_in_vietnamese() {
    let src = "rules:\n  - id: q\n    when: message\n    do:\n      - send: \"Chào \"bạn\" nhé\"\n";
    let (d, shown) = one_vi(src);
    assert_eq!(d.pos.line, 5);
    assert!(shown.contains("hãy dùng loại ngoặc còn lại"), "{shown}");
    assert!(shown.ends_with("- send: 'Chào \"bạn\" nhé'"), "{shown}");
}

#[test]
fn an_unknown_trigger_asks_did_you_mean_in_vietnamese() {
    let src = "rules:\n  - id: chao\n    when: mesage\n    do: [stop]\n";
    let (d, shown) = one_vi(src);
    assert_eq!((d.pos.line, d.pos.col), (3, 11));
    assert!(
        shown.starts_with(
            "t.yaml, dòng 3, cột 11: không có sự kiện `mesage`: có phải ý bạn là `message`? (các sự kiện có: message, follow,"
        ),
        "{shown}"
    );
    let en = problems(src, Some(Lang::En))[0].render(Lang::En);
    assert!(
        en.starts_with("t.yaml:3:11: unknown trigger `mesage`: did you mean `message`? (known: "),
        "{en}"
    );
}

#[test]
fn an_unknown_action_and_key_ask_did_you_mean_in_vietnamese() {
    let (_, shown) = one_vi("rules:\n  - id: a\n    when: follow\n    do:\n      - sned: Chào\n");
    assert!(
        shown.contains("không có việc `sned`: có phải ý bạn là `send`?"),
        "{shown}"
    );
    let (_, shown) =
        one_vi("rules:\n  - id: a\n    descripton: x\n    when: follow\n    do: [stop]\n");
    assert!(
        shown.contains("quy tắc không có khóa `descripton`: có phải ý bạn là `description`?"),
        "{shown}"
    );
}

#[test]
fn an_unknown_tag_is_held_against_the_tags_vocabulary_in_vietnamese() {
    let src = "tags:\n  vip_customer: khách VIP\nrules:\n  - id: vip\n    when:\n      tag_added: vip_custmer\n    do:\n      - send: Chào bạn\n";
    let (d, shown) = one_vi(src);
    assert_eq!((d.pos.line, d.pos.col), (6, 18));
    assert_eq!(
        d.message,
        "nhãn `vip_custmer` không có trong danh sách `tags:`; có phải ý bạn là `vip_customer`? (nếu là nhãn mới, hãy thêm nó vào `tags:`)"
    );
    assert!(shown.starts_with("t.yaml, dòng 6, cột 18: "), "{shown}");
    let en = &problems(src, Some(Lang::En))[0];
    assert_eq!(
        en.message,
        "unknown tag `vip_custmer`; did you mean `vip_customer`? (add it under `tags:` if it is a new tag)"
    );
}

#[test]
fn a_cut_off_file_is_told_in_vietnamese() {
    // Cut in the middle of a quoted text.
    let (d, shown) = one_vi(
        "rules:\n  - id: c\n    when: message\n    do:\n      - send: \"Chào bạn, shop có ưu đ",
    );
    assert_eq!(d.pos.line, 5);
    assert!(
        shown.contains("lỗi cú pháp YAML: có dấu ngoặc kép được mở mà không đóng (tệp có bị cắt mất phần cuối không?)"),
        "{shown}"
    );
    // Cut in the middle of a `{…}` or `[…]`.
    let (_, shown) = one_vi(
        "rules:\n  - id: c\n    when: message\n    do:\n      - send: {text: Chào, buttons: [{title: a, url: \"https://shop.vn\"}\n",
    );
    assert!(
        shown.contains("tệp có bị cắt mất phần cuối không?"),
        "{shown}"
    );
    // Cut down to nothing: its rules would stop.
    let (d, shown) = one_vi("# rules:\n");
    assert_eq!((d.pos.line, d.pos.col), (1, 1));
    assert!(
        shown.contains("tệp này trống (hoặc chỉ có ghi chú): mọi quy tắc của nó sẽ ngừng chạy"),
        "{shown}"
    );
}

#[test]
fn a_missing_value_and_a_bad_time_are_told_in_vietnamese() {
    let (_, shown) = one_vi(
        "rules:\n  - id: a\n    when: follow\n    do:\n      - send: Chào\n    cooldown: 2x\n",
    );
    assert!(
        shown.contains("`cooldown`: khoảng thời gian `2x` không đúng"),
        "{shown}"
    );
    let (_, shown) =
        one_vi("rules:\n  - id: a\n    when: follow\n    do:\n      - send: Chào {{ten}}\n");
    assert!(shown.contains("`send`: không có biến `ten`"), "{shown}");
    let (_, shown) = one_vi("rules:\n  - id: a\n    when: follow\n");
    assert!(shown.contains("quy tắc cần có `do:`"), "{shown}");
    // `- send:` with nothing after it.
    let (d, shown) = one_vi("rules:\n  - id: a\n    when: follow\n    do:\n      - send:\n");
    assert_eq!(d.pos.line, 5, "{shown}");
    assert!(
        shown.contains("thiếu giá trị cho `send`: hãy viết `send: …`"),
        "{shown}"
    );
    let en = problems(
        "rules:\n  - id: a\n    when: follow\n    do:\n      - send:\n",
        Some(Lang::En),
    );
    assert!(en[0].message.contains("`send` needs a value"), "{en:?}");
}

// ---------------------------------------------------------------------------------------
// The command.

/// `zaloflow rules check` on `dir` with only these variables (and PATH): (exit code, stdout
/// and stderr together).
fn rules_check(dir: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zaloflow"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .args(["rules", "check", "--rules"])
        .arg(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn rules_check_of_many_mistakes_speaks_one_language() {
    let dir = manifest("tests/fixtures/rules/broken");
    let (code, vi) = rules_check(&dir, &[]);
    assert_eq!(code, Some(1), "{vi}");
    let lines: Vec<&str> = vi.lines().collect();
    assert!(lines.len() > 20, "{vi}");
    for l in &lines[..lines.len() - 1] {
        if !l.starts_with("    ") {
            assert!(l.contains(", dòng ") && l.contains(", cột "), "{l}");
        }
    }
    assert!(
        lines.last().unwrap().starts_with("không đạt: ")
            && lines
                .last()
                .unwrap()
                .ends_with(": các quy tắc này chưa dùng được, hãy sửa các lỗi trên"),
        "{vi}"
    );
    assert!(
        vi.contains("bad_cron.yaml, dòng 4, cột 17: lịch cron `0 9 * *` không đúng"),
        "{vi}"
    );
    i18n_check::assert_one_language(&vi, Lang::Vi);

    let (code, en) = rules_check(&dir, &[("ZALOFLOW_LANG", "en")]);
    assert_eq!(code, Some(1), "{en}");
    assert!(
        en.contains("bad_cron.yaml:4:17: bad cron `0 9 * *`"),
        "{en}"
    );
    assert!(
        en.lines()
            .last()
            .unwrap()
            .ends_with(": the rules do not load"),
        "{en}"
    );
    i18n_check::assert_one_language(&en, Lang::En);
    assert_eq!(vi.lines().count(), en.lines().count(), "{vi}\n{en}");
}

/// Rules that load with warnings of every kind, and a channel this deployment lacks.
const WARNED: &str = r#"rules:
  - id: chao
    when: message
    do:
      - send: Chào bạn!
  - id: hoi_gia
    when: {message: {contains: giá}}
    do:
      - send: Shop gửi bạn bảng giá nhé
      - tag: quan_tam
      - sms: Cảm ơn bạn
  - id: quan_tam
    when: {tag_added: quan_tam}
    do:
      - send: Bạn quan tâm sản phẩm nào?
  - id: nhac_lai
    when: {inactive: {min_days: 10}}
    do:
      - send: Lâu rồi không gặp bạn
  - id: sau_stop
    when: follow
    do: [stop]
  - id: khong_chay
    when: follow
    do:
      - send: Chào mừng
  - id: cho_vip
    when: {tag_added: vip}
    do:
      - send: Chào khách VIP
"#;

#[test]
fn rules_check_warnings_and_findings_speak_one_language() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), WARNED).unwrap();
    // A deployment's setting: the channels are checked (SMS is not configured).
    let deployment = ("ZALOFLOW_TZ", "Asia/Ho_Chi_Minh");
    let (code, vi) = rules_check(dir.path(), &[deployment]);
    assert_eq!(code, Some(0), "{vi}");
    for want in [
        ": cảnh báo: quy tắc `chao`: `send` chạy theo sự kiện `message` mà không có `once_per` hay `cooldown`",
        "hai quy tắc `chao` (",
        "quy tắc `khong_chay` không bao giờ chạy: `sau_stop` (",
        "quy tắc `nhac_lai` gửi tới khách đã im lặng từ 7 ngày trở lên",
        "không quy tắc nào gắn nhãn `vip`",
        "quy tắc hoi_gia: `sms` không chạy được: chưa cài đặt gửi SMS: hãy đặt ZALOFLOW_SMS_URL",
        "ghi chú: các kênh gửi đã được kiểm tra",
    ] {
        assert!(vi.contains(want), "want {want:?} in\n{vi}");
    }
    assert!(
        vi.lines()
            .any(|l| l.starts_with("đạt: 7 quy tắc trong 1 tệp (thư mục ")),
        "{vi}"
    );
    i18n_check::assert_one_language(&vi, Lang::Vi);

    let (code, en) = rules_check(dir.path(), &[deployment, ("ZALOFLOW_LANG", "en")]);
    assert_eq!(code, Some(0), "{en}");
    assert!(
        en.contains(": warning: rule `chao`: `send` on a `message` trigger"),
        "{en}"
    );
    assert!(
        en.contains("rule hoi_gia: `sms` cannot run: SMS is not configured: set ZALOFLOW_SMS_URL"),
        "{en}"
    );
    assert!(
        en.lines()
            .any(|l| l.starts_with("ok: 7 rules in 1 file in ")),
        "{en}"
    );
    i18n_check::assert_one_language(&en, Lang::En);

    // Without a deployment's settings the note says the channels were not checked.
    let (_, vi) = rules_check(dir.path(), &[]);
    assert!(
        vi.contains("ghi chú: CHƯA kiểm tra cài đặt các kênh gửi"),
        "{vi}"
    );
    i18n_check::assert_one_language(&vi, Lang::Vi);
    let (code, _) = rules_check(dir.path(), &[]);
    assert_eq!(code, Some(0));
}

#[test]
fn deny_warnings_fails_in_vietnamese() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), WARNED).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_zaloflow"));
    let out = c
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .args(["rules", "check", "--deny-warnings", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("không đạt: 7 quy tắc trong 1 tệp"),
        "{stdout}"
    );
    assert!(last.contains("cảnh báo (--deny-warnings"), "{stdout}");
    i18n_check::assert_one_language(&stdout, Lang::Vi);
}

/// The running service's reload speaks the configured language too: a broken change is
/// reported (and the previous rules kept) in Vietnamese, its warnings as well.
#[test]
fn a_reload_reports_in_vietnamese() {
    use zaloflow::rules::watch::Reload;
    use zaloflow::rules::RuleWatcher;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    std::fs::write(
        &file,
        "rules:\n  - id: mot\n    when: message\n    do: [{send: Chào}]\n",
    )
    .unwrap();
    let w = RuleWatcher::load(dir.path(), LoadOptions::default(), 1).unwrap();
    let warnings: Vec<String> = w.status().warnings.iter().map(|x| x.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(&format!(
            "{}, dòng 4, cột 11: cảnh báo: quy tắc `mot`:",
            file.display()
        )),
        "{warnings:?}"
    );
    i18n_check::assert_one_language(&warnings.join("\n"), Lang::Vi);

    std::fs::write(
        dir.path().join("b.yaml"),
        "rules:\n  - id: hai\n    when: folow\n    do: [stop]\n",
    )
    .unwrap();
    assert_ne!(w.check(2), Reload::Reloaded);
    assert_eq!(w.current().len(), 1);
    let errors = w.status().errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with(
            "b.yaml, dòng 3, cột 11: không có sự kiện `folow`: có phải ý bạn là `follow`? (các sự kiện có: message, follow, unfollow, chat_now, tag_added, tag_removed, info_submitted, oa_reply, schedule, inactive, special_day, field_changed, form_submitted, email_opened, email_not_opened, email_clicked, after_step)"
        ),
        "{errors:?}"
    );
    i18n_check::assert_one_language(&errors.join("\n"), Lang::Vi);
}

/// What a change to a running campaign does to its members, in either language.
#[test]
fn campaign_step_edits_are_told_in_vietnamese() {
    use zaloflow::rules::campaign::StepEdit;
    let removed = StepEdit::Removed {
        step: "chao".into(),
        to: Some("ngay_1".into()),
    };
    let vi = removed.render(Lang::Vi);
    assert_eq!(
        vi,
        "bước `chao` bị xóa: khách đang chờ bước này chuyển sang bước `ngay_1`, không sớm hơn lúc họ đến hạn và không sớm hơn ngày giờ của chính bước `ngay_1`"
    );
    assert!(removed
        .to_string()
        .starts_with("step `chao` removed: its members move to step `ngay_1`"));
    let all = [
        removed,
        StepEdit::Removed {
            step: "x".into(),
            to: None,
        },
        StepEdit::Added {
            step: "y".into(),
            at: 2,
        },
        StepEdit::Moved {
            step: "z".into(),
            from: 1,
            to: 3,
        },
        StepEdit::Kept { step: "k".into() },
    ];
    let vi: Vec<String> = all.iter().map(|e| e.render(Lang::Vi)).collect();
    let en: Vec<String> = all.iter().map(|e| e.render(Lang::En)).collect();
    i18n_check::assert_one_language(&vi.join("\n"), Lang::Vi);
    i18n_check::assert_one_language(&en.join("\n"), Lang::En);
}
