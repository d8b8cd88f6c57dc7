//! Issue 28: the forecast page `/admin/forecast.html` in headless Chromium, on both backends,
//! against a shop that really ran a week (tests/forecast_week): staff sign in as for the report
//! page, paste an edited rule file that adds one rule, and see its extra sends, the difference
//! and the cost per rule, a table and a bar per day; a draft with a YAML mistake shows the
//! mistake with its line and column in Vietnamese; what staff typed is shown as text, never as
//! markup.

mod common;
mod forecast_week;
#[path = "common/i18n.rs"]
mod i18n_check;
mod sched;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{Days, TimeZone};
use forecast_week::*;
use sched::*;
use webdriver::Browser;
use zaloflow::i18n::Lang;

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    the_page_shows_a_drafts_extra_sends_their_cost_and_a_bar_per_day,
    a_draft_with_a_yaml_mistake_shows_it_with_line_and_column_in_vietnamese,
    what_staff_type_is_shown_as_text_never_as_markup,
);

const TOKEN: &str = "forecast-page-admin-token-0123456789";
const XSS: &str = "<img src=x onerror=alert(1)>";

/// The first day of the recorded week: ten days ago (OA time), inside the page's window (the
/// last 28 days, up to yesterday).
fn week_start() -> i64 {
    let today = chrono::Utc::now().with_timezone(&TZ).date_naive();
    let day = today.checked_sub_days(Days::new(10)).unwrap();
    TZ.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .timestamp_millis()
}

fn day_of(ms: i64) -> String {
    TZ.timestamp_millis_opt(ms)
        .unwrap()
        .date_naive()
        .to_string()
}

/// The shop (after its recorded week, when it starts at `week`), and a browser signed in as
/// admin on the forecast page. Every consultation message is paid, at 1.000 VND (no free tier), so each
/// extra send has a price.
async fn signed_in(kind: &str, week: Option<i64>) -> (Shop, Browser) {
    let mut s = shop_settings(
        kind,
        Rules::Yaml(RULES),
        false,
        &[
            ("ZALOFLOW_ADMIN_TOKEN", TOKEN),
            ("ZALOFLOW_FREE_TIER", "0/48h"),
            ("ZALOFLOW_PRICES_VND", "consultation_paid=1000"),
        ],
    )
    .await;
    if let Some(from) = week {
        run_week(&mut s, from).await;
    }
    let b = Browser::start().await;
    let page = format!("{}/admin/forecast.html", s.app.base);
    // Not signed in: how to sign in, no form.
    b.goto(&page).await;
    let text = b.text().await;
    assert!(text.contains("để đăng nhập"), "{text}");
    assert_eq!(count(&b, "form").await, 0);
    // Signed in as for the report page (its session cookie), then the form.
    b.goto(&format!("{}/admin/report.html?token={TOKEN}", s.app.base))
        .await;
    b.goto(&page).await;
    assert_eq!(b.find_all("form textarea[name=yaml]").await.len(), 1);
    (s, b)
}

/// Types a rule file into the page's form, sends it, and waits for the page that answers:
/// the forecast (its headings) or the draft's problems.
async fn submit(s: &Shop, b: &Browser, name: &str, yaml: &str) {
    // A fresh form: no result of an earlier run to be mistaken for this one's.
    b.goto(&format!("{}/admin/forecast.html", s.app.base)).await;
    assert_eq!(count(b, "h2, .problems").await, 0);
    let field = b.find("input[name=name]").await;
    b.type_into(&field, name).await;
    let area = b.find("textarea[name=yaml]").await;
    b.type_into(&area, yaml).await;
    // Typed as written (the browser adds no indentation of its own).
    assert_eq!(b.value_of(&area).await, yaml);
    let button = b.find("form button").await;
    b.click(&button).await;
    let start = Instant::now();
    while count(b, "h2, .problems").await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no forecast:\n{}",
            b.source().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many elements match `css` now (`find_all` would wait for one to appear).
async fn count(b: &Browser, css: &str) -> usize {
    let v = b
        .execute(&format!(
            "return document.querySelectorAll({css:?}).length;"
        ))
        .await;
    v.as_u64().unwrap() as usize
}

/// No element came of what was typed: no image, no inline script.
async fn no_markup(b: &Browser) {
    assert_eq!(count(b, "img, script").await, 0, "{}", b.source().await);
}

/// The text of the page's problems (the draft refused).
async fn problems(b: &Browser) -> String {
    b.find(".problems").await;
    let v = b
        .execute("return document.querySelector('.problems').textContent;")
        .await;
    v.as_str().unwrap().to_string()
}

/// The cells of the rows of `table.{class}`, as shown.
async fn table(b: &Browser, class: &str) -> Vec<Vec<String>> {
    let v = b
        .execute(&format!(
            "return [...document.querySelectorAll('table.{class} tr')].map(r => [...r.cells].map(c => c.textContent));"
        ))
        .await;
    serde_json::from_value(v).unwrap()
}

async fn the_page_shows_a_drafts_extra_sends_their_cost_and_a_bar_per_day(kind: &str) {
    let from = week_start();
    let (s, b) = signed_in(kind, Some(from)).await;
    // The edited t.yaml: the running rules and one more, a thank-you to every message.
    submit(&s, &b, "t.yaml", &format!("{RULES}{EXTRA}")).await;
    let text = b.text().await;
    i18n_check::assert_one_language(&text, Lang::Vi);
    assert_eq!(
        b.execute("return document.documentElement.lang;").await,
        "vi"
    );
    assert_eq!(count(&b, ".problems").await, 0, "{text}");

    // Per rule: the week's five messages got one thank-you each, at 1.000 VND each.
    let rules = table(&b, "rules").await;
    assert_eq!(
        rules[0],
        [
            "Quy tắc",
            "Tin gửi (đang chạy)",
            "Tin gửi (nháp)",
            "chênh lệch",
            "Bỏ qua",
            "Chuyển nhân viên",
            "Chi phí (đang chạy)",
            "Chi phí (nháp)",
        ],
        "{rules:?}"
    );
    let row = |key: &str| {
        rules
            .iter()
            .find(|r| r[0] == key)
            .unwrap_or_else(|| panic!("no row {key}: {rules:?}"))
            .clone()
    };
    assert_eq!(
        row("cam_on"),
        ["cam_on", "0", "5", "+5", "0", "0", "0 VND", "5.000 VND"]
    );
    // The running rules' own rows are unchanged by the draft.
    for rule in ["tra_loi", "chao", "nhac_lai", "km"] {
        let r = row(rule);
        assert_eq!((&r[1], &r[3]), (&r[2], &"±0".to_string()), "{r:?}");
        assert_eq!(r[6], r[7], "{r:?}");
    }
    assert_eq!(row("tra_loi")[1], "5");
    assert_eq!(row("nhac_lai")[1], "4");
    // The total, in Vietnamese: five more sends, 5.000 VND more.
    let total = row("Tổng");
    let (cur, new): (i64, i64) = (total[1].parse().unwrap(), total[2].parse().unwrap());
    assert_eq!((new - cur, total[3].as_str()), (5, "+5"), "{total:?}");
    let vnd = |cell: &str| -> i64 {
        cell.trim_end_matches(" VND")
            .replace('.', "")
            .parse()
            .unwrap()
    };
    assert_eq!(vnd(&total[7]) - vnd(&total[6]), 5000, "{total:?}");
    assert!(text.contains("cam_on: +5 tin, +5.000 VND"), "{text}");

    // Per day: the thank-yous went out on the days the customers wrote (two on the first).
    let extra: BTreeMap<String, i64> = [
        (day_of(from), 2),
        (day_of(from + DAY), 1),
        (day_of(from + 2 * DAY), 1),
        (day_of(from + 4 * DAY), 1),
    ]
    .into();
    let days = table(&b, "days").await;
    assert_eq!(days[0][0], "Ngày");
    let body = &days[1..days.len() - 1];
    assert_eq!(days.last().unwrap()[0], "Tổng");
    for d in body {
        let (cur, new): (i64, i64) = (d[1].parse().unwrap(), d[2].parse().unwrap());
        assert_eq!(new - cur, extra.get(&d[0]).copied().unwrap_or(0), "{d:?}");
        if d[0] < day_of(from) || d[0] > day_of(from + 7 * DAY) {
            assert_eq!((d[1].as_str(), d[2].as_str()), ("0", "0"), "{days:?}");
        }
    }
    for day in extra.keys() {
        assert!(body.iter().any(|d| &d[0] == day), "{day}: {days:?}");
    }

    // The chart: a bar pair per day of the table, the draft's bar taller by its extra sends.
    assert!(text.contains("Tin gửi mỗi ngày"), "{text}");
    let bars: Vec<(String, i64, i64, f64, f64)> = serde_json::from_value(
        b.execute(
            "return [...document.querySelectorAll('svg.chart g.day')].map(g => {
               const c = g.querySelector('rect.current'), d = g.querySelector('rect.draft');
               return [g.dataset.day, +c.dataset.sends, +d.dataset.sends,
                       c.getBBox().height, d.getBBox().height];
             });",
        )
        .await,
    )
    .unwrap();
    assert_eq!(bars.len(), body.len(), "{bars:?}");
    let most = bars.iter().map(|b| b.1.max(b.2)).max().unwrap();
    assert!(most > 0, "{bars:?}");
    for ((day, cur, new, hc, hd), r) in bars.iter().zip(body) {
        assert_eq!(day, &r[0]);
        assert_eq!(
            (cur.to_string(), new.to_string()),
            (r[1].clone(), r[2].clone())
        );
        // Heights in proportion to the sends, the busiest day's bar 120 px tall.
        for (sends, height) in [(cur, hc), (new, hd)] {
            let want = (*sends as f64 / most as f64 * 120.0).round();
            assert_eq!(*height, want, "{day}: {sends} sends, {bars:?}");
        }
    }
    let shot = std::env::temp_dir().join(format!("zaloflow-forecast-{kind}.png"));
    b.screenshot(&shot).await;
    b.quit().await;
    s.stop().await;
}

async fn a_draft_with_a_yaml_mistake_shows_it_with_line_and_column_in_vietnamese(kind: &str) {
    let (s, b) = signed_in(kind, None).await;
    // A text with `: ` in it, unquoted: the commonest mistake (rules/HUONG_DAN.md).
    let broken = format!(
        "{RULES}  - id: nghi_tet\n    when: message\n    do:\n      - send: Lưu ý: shop nghỉ Tết\n"
    );
    submit(&s, &b, "t.yaml", &broken).await;
    assert_eq!(count(&b, "svg.chart, table").await, 0);
    let shown = problems(&b).await;
    // The place, line 26 column 20 (the second `: `), and the mistake in the staff's words.
    assert!(
        shown.contains("t.yaml:26:20: lỗi cú pháp YAML: có dấu hai chấm và dấu cách"),
        "{shown}"
    );
    let text = b.text().await;
    assert!(
        text.contains("Quy tắc nháp có lỗi; không dự báo:"),
        "{text}"
    );
    assert!(text.contains("lỗi cú pháp YAML"), "{text}");
    assert!(text.contains("send: \"Lưu ý: shop nghỉ Tết\""), "{text}");
    i18n_check::assert_one_language(&text, Lang::Vi);
    // What was typed stays in the form, to be corrected.
    let area = b.find("textarea[name=yaml]").await;
    assert_eq!(b.value_of(&area).await, broken);

    // A span mistyped (a Vietnamese unit, with markup): explained in Vietnamese, shown as
    // typed, and kept in the form. It was the admin API's English message before, and `14đ`
    // (a unit wider than a byte) a failed request.
    for ahead in ["2 tuần", "14đ<b>x</b>đ", "0d"] {
        b.goto(&format!("{}/admin/forecast.html", s.app.base)).await;
        b.type_into(&b.find("input[name=name]").await, "t.yaml")
            .await;
        b.type_into(&b.find("textarea[name=yaml]").await, RULES)
            .await;
        let field = b.find("input[name=ahead]").await;
        b.type_into(&field, ahead).await;
        b.click(&b.find("form button").await).await;
        let shown = problems(&b).await;
        let expected = if ahead == "0d" {
            format!("“{ahead}” phải dài hơn 0")
        } else {
            format!("“{ahead}” không phải một khoảng thời gian")
        };
        assert!(shown.contains(&expected), "{shown}");
        no_markup(&b).await;
        let text = b.text().await;
        assert!(text.contains("Những ngày tới"), "{text}");
        i18n_check::assert_one_language(&text, Lang::Vi);
        let field = b.find("input[name=ahead]").await;
        assert_eq!(b.value_of(&field).await, ahead);
    }
    b.quit().await;
    s.stop().await;
}

async fn what_staff_type_is_shown_as_text_never_as_markup(kind: &str) {
    let (s, b) = signed_in(kind, None).await;
    // A send text with markup, closing the text area first: the forecast runs, the text stays
    // in the form as typed.
    let yaml = format!(
        "{RULES}  - id: loi\n    when: message\n    do:\n      - send: \"</textarea>{XSS}\"\n"
    );
    submit(&s, &b, "t.yaml", &yaml).await;
    no_markup(&b).await;
    assert_eq!(count(&b, ".problems").await, 0, "{}", b.text().await);
    assert_eq!(count(&b, "svg.chart").await, 1);
    let area = b.find("textarea[name=yaml]").await;
    assert_eq!(b.value_of(&area).await, yaml);
    assert_eq!(b.find_all("textarea").await.len(), 1);

    // A rule id with markup: refused, the id shown as typed.
    let yaml = RULES.replace("id: tra_loi", &format!("id: \"{XSS}\""));
    submit(&s, &b, "t.yaml", &yaml).await;
    no_markup(&b).await;
    let shown = problems(&b).await;
    assert!(
        shown.contains(&format!(
            "t.yaml:4:9: mã quy tắc `{XSS}` chỉ được gồm chữ cái"
        )),
        "{shown}"
    );

    // A file name with markup: refused, shown as typed, in the problems and the form.
    let name = format!("{XSS}.yaml");
    submit(&s, &b, &name, RULES).await;
    no_markup(&b).await;
    let shown = problems(&b).await;
    assert!(shown.contains(&name), "{shown}");
    let field = b.find("input[name=name]").await;
    assert_eq!(b.value_of(&field).await, name);
    b.quit().await;
    s.stop().await;
}
