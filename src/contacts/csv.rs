//! `zaloflow contacts import FILE [--list NAME]` and `zaloflow contacts export [--list NAME]
//! [-o FILE]`.
//!
//! Columns (header row, any order, names without case): `user_id` (optional), `name`, `phone`,
//! `email`, `tags` (`;`-separated), `birthday` (`DD/MM/YYYY` or `YYYY-MM-DD`), `follows`
//! (whether the contact follows the OA: `true`/`false`, `yes`/`no`, `1`/`0`, `có`/`không`; empty =
//! unknown) and `last_interaction` (the contact's last interaction with the OA: an RFC 3339
//! instant `2027-03-01T09:30:00+07:00`, a local `YYYY-MM-DD HH:MM` in the OA time zone, or a
//! day `YYYY-MM-DD` / `DD/MM/YYYY`, counted as that day's end like Zalo's own dates; never in
//! the future; it never moves a later known interaction back); any other column
//! is a custom field. A `;`-delimited file (Excel in some locales) is recognised by its header,
//! and a UTF-8 byte-order mark is skipped.
//!
//! Each row is validated on its own; a bad row is rejected with its line number and reason
//! (printed, and written with its cells to `FILE.rejected.csv`) and the rest goes on. Good rows
//! are upserted in batches (5,000 per transaction by default): a row names its contact by
//! `user_id`, else by the phone or email of an existing contact, else a new `phone:…`/`email:…`
//! id — so importing the same file twice updates and never duplicates. Empty cells leave
//! stored values alone; tags are added, never removed.
//!
//! Export writes the same columns, so an export imports back unchanged. Cells that a
//! spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`) are written with a
//! leading `'`, which import takes off again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::*;
use crate::i18n::{tr, words, Lang};
use crate::store::{ContactChange, DynStore, ListChange};

/// Standard columns, in export order.
pub const COLUMNS: &[&str] = &["user_id", "name", "phone", "email", "tags", "birthday"];

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Also put every imported contact on this list.
    pub list: Option<String>,
    /// Rows per transaction.
    pub batch: usize,
    /// Draw a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// The OA time zone, for `last_interaction` days and local times.
    pub tz: chrono_tz::Tz,
    /// The language of the rejected rows' reasons (`ZALOFLOW_LANG`).
    pub lang: Lang,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            list: None,
            batch: 5000,
            progress: false,
            tz: chrono_tz::Asia::Ho_Chi_Minh,
            lang: Lang::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The line of the file the row starts on (the header is line 1).
    pub line: u64,
    pub reason: String,
    pub cells: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Rows read (header excluded).
    pub rows: u64,
    /// Rows that created a contact.
    pub imported: u64,
    /// Rows that updated an existing contact (or one created earlier in the same file).
    pub updated: u64,
    pub rejected: Vec<Rejected>,
    /// Where the rejected rows were written, if any were.
    pub rejected_file: Option<PathBuf>,
    pub elapsed: Duration,
}

/// One valid row.
#[derive(Debug, Clone, Default)]
struct Row {
    user_id: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    tags: Vec<String>,
    fields: Vec<(String, String)>,
    follows: Option<bool>,
    last_interaction: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    UserId,
    Name,
    Phone,
    Email,
    Tags,
    Birthday,
    Follows,
    LastInteraction,
    Field(usize),
}

/// The rejected-rows file of `path`: `FILE.rejected.csv`.
pub fn rejected_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".rejected.csv");
    PathBuf::from(s)
}

/// Imports `path` (see the module docs). Fails only when the file cannot be read or its
/// header is unusable; bad rows are reported, not fatal.
pub async fn import(
    store: &DynStore,
    path: &Path,
    opts: &ImportOptions,
    now: i64,
) -> anyhow::Result<ImportReport> {
    let started = Instant::now();
    if let Some(l) = &opts.list {
        if !crate::store::valid_list_name(l) {
            bail!(
                "{}",
                words(
                    opts.lang,
                    "contacts.import.bad_list",
                    &[("list", format!("{l:?}"))]
                )
            );
        }
    }
    let bytes_total = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let delimiter = sniff_delimiter(path)?;
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    let (cols, field_names) = map_header(&header, opts.lang)?;

    let bar = progress_bar(opts.progress, bytes_total);
    let mut report = ImportReport::default();
    let mut batch: Vec<Row> = Vec::with_capacity(opts.batch);
    let mut resolver = Resolver::default();
    let mut record = ::csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                report.rows += 1;
                let line = record.position().map_or(line, |p| p.line());
                if record.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                let shape = Shape {
                    cols: &cols,
                    field_names: &field_names,
                    width: header.len(),
                };
                match parse_row(&record, &shape, opts.tz, opts.lang, now) {
                    Ok(row) => batch.push(row),
                    Err(reason) => report.rejected.push(Rejected {
                        line,
                        reason,
                        cells: record.iter().map(str::to_string).collect(),
                    }),
                }
            }
            Err(e) => {
                // A row that is not UTF-8 (or otherwise unreadable): reject it and go on.
                report.rows += 1;
                let line = e.position().map_or(line, |p| p.line());
                let reason = match e.kind() {
                    ::csv::ErrorKind::Utf8 { .. } => {
                        tr(opts.lang, "contacts.import.not_utf8").into_owned()
                    }
                    other => words(
                        opts.lang,
                        "contacts.import.unreadable",
                        &[("error", format!("{other:?}"))],
                    ),
                };
                report.rejected.push(Rejected {
                    line,
                    reason,
                    cells: Vec::new(),
                });
                if !matches!(e.kind(), ::csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
        if batch.len() >= opts.batch.max(1) {
            flush(store, &mut batch, &mut resolver, opts, &mut report, now).await?;
            bar.set_position(reader.position().byte());
            bar.set_message(words(
                opts.lang,
                "contacts.import.progress",
                &[
                    ("rows", report.rows.to_string()),
                    ("rejected", report.rejected.len().to_string()),
                ],
            ));
        }
    }
    flush(store, &mut batch, &mut resolver, opts, &mut report, now).await?;
    bar.finish_and_clear();

    let rejected_file = rejected_path(path);
    if report.rejected.is_empty() {
        // A file left by an earlier run would now be wrong.
        if rejected_file.exists() {
            std::fs::remove_file(&rejected_file)
                .with_context(|| format!("removing {}", rejected_file.display()))?;
        }
    } else {
        write_rejected(&rejected_file, &header, &report.rejected)?;
        report.rejected_file = Some(rejected_file);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// `;` when the header line has semicolons and no commas (Excel in some locales), else `,`.
fn sniff_delimiter(path: &Path) -> anyhow::Result<u8> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut first = String::new();
    let _ = std::io::BufReader::new(f).read_line(&mut first);
    Ok(if first.contains(';') && !first.contains(',') {
        b';'
    } else {
        b','
    })
}

fn map_header(header: &::csv::StringRecord, lang: Lang) -> anyhow::Result<(Vec<Col>, Vec<String>)> {
    let mut cols = Vec::with_capacity(header.len());
    let mut fields = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw) in header.iter().enumerate() {
        let name = raw.trim_start_matches('\u{feff}').trim();
        let lower = name.to_lowercase();
        if !seen.insert(lower.clone()) {
            bail!(
                "{}",
                words(
                    lang,
                    "contacts.import.twice",
                    &[("name", format!("{name:?}"))]
                )
            );
        }
        let col = match lower.as_str() {
            "user_id" => Col::UserId,
            "name" => Col::Name,
            "phone" => Col::Phone,
            "email" => Col::Email,
            "tags" => Col::Tags,
            "birthday" => Col::Birthday,
            "follows" => Col::Follows,
            "last_interaction" => Col::LastInteraction,
            _ => {
                let f = parse_field_name(name).map_err(|e| {
                    anyhow::anyhow!(
                        "{}",
                        words(
                            lang,
                            "contacts.import.header_column",
                            &[("n", (i + 1).to_string()), ("problem", e.words(lang))]
                        )
                    )
                })?;
                fields.push(f);
                Col::Field(fields.len() - 1)
            }
        };
        cols.push(col);
    }
    if !cols
        .iter()
        .any(|c| matches!(c, Col::UserId | Col::Phone | Col::Email))
    {
        bail!("{}", tr(lang, "contacts.import.no_id_column"));
    }
    Ok((cols, fields))
}

/// A follow status: `true`/`false`, `yes`/`no`, `y`/`n`, `1`/`0`, `có`/`không` (any case).
/// Empty = unknown (the stored value is left alone).
pub fn parse_follows(raw: &str) -> Result<Option<bool>, Invalid> {
    match raw.trim().to_lowercase().as_str() {
        "" => Ok(None),
        "true" | "yes" | "y" | "1" | "có" | "co" => Ok(Some(true)),
        "false" | "no" | "n" | "0" | "không" | "khong" => Ok(Some(false)),
        _ => Err(Invalid::Follows),
    }
}

/// A last interaction as milliseconds: an RFC 3339 instant, a local `YYYY-MM-DD HH:MM[:SS]`
/// (OA time zone), or a day (`YYYY-MM-DD`, `DD/MM/YYYY`) counted as its last millisecond (at
/// most `now`). Not in the future, not before 2000. Empty = none.
pub fn parse_last_interaction(
    raw: &str,
    tz: chrono_tz::Tz,
    now: i64,
) -> Result<Option<i64>, Invalid> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || Invalid::Time;
    let at = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        t.timestamp_millis()
    } else if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
    {
        tz.from_local_datetime(&t)
            .earliest()
            .ok_or(Invalid::ClockChange)?
            .timestamp_millis()
    } else {
        let day = NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
            .map_err(|_| bad())?;
        if day
            > chrono::DateTime::from_timestamp_millis(now)
                .map_or(day, |t| t.with_timezone(&tz).date_naive())
        {
            return Err(Invalid::Future);
        }
        super::sync::interaction_day(day, tz, now).1
    };
    if at > now + 60_000 {
        return Err(Invalid::Future);
    }
    if at < 946_684_800_000 {
        return Err(Invalid::Before2000);
    }
    Ok(Some(at))
}

/// A cell as written by export: a leading `'` that protected a formula-like value comes off.
fn cell(raw: &str) -> &str {
    let t = raw.trim();
    match t.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => t,
    }
}

/// The file's columns, as its header names them.
struct Shape<'a> {
    cols: &'a [Col],
    field_names: &'a [String],
    /// How many columns the header has.
    width: usize,
}

/// A row as a contact, or why it is rejected (in `lang`).
fn parse_row(
    record: &::csv::StringRecord,
    shape: &Shape<'_>,
    tz: chrono_tz::Tz,
    lang: Lang,
    now: i64,
) -> Result<Row, String> {
    let Shape {
        cols,
        field_names,
        width,
    } = *shape;
    if record.len() > width && record.iter().skip(width).any(|c| !c.trim().is_empty()) {
        return Err(words(
            lang,
            "contacts.import.cells",
            &[
                ("cells", record.len().to_string()),
                ("columns", width.to_string()),
            ],
        ));
    }
    let mut row = Row::default();
    let mut problems = Vec::new();
    let mut note = |what: &str, value: &str, e: Invalid| {
        problems.push(format!("{what} {value:?} {}", e.words(lang)));
    };
    let column = |name: &str, i: usize| {
        words(
            lang,
            "contacts.import.column_n",
            &[("name", name.to_string()), ("n", (i + 1).to_string())],
        )
    };
    for (i, col) in cols.iter().enumerate() {
        let raw = cell(record.get(i).unwrap_or(""));
        match col {
            Col::UserId => match parse_user_id(raw) {
                Ok(v) => row.user_id = v,
                Err(e) => note("user_id", raw, e),
            },
            Col::Name => match parse_name(raw) {
                Ok(v) => row.name = v,
                Err(e) => note("name", raw, e),
            },
            Col::Phone => match parse_phone(raw) {
                Ok(v) => row.phone = v,
                Err(e) => note("phone", raw, e),
            },
            Col::Email => match parse_email(raw) {
                Ok(v) => row.email = v,
                Err(e) => note("email", raw, e),
            },
            Col::Birthday => match parse_birthday(raw) {
                Ok(Some(v)) => row.fields.push((BIRTHDAY_FIELD.to_string(), v)),
                Ok(None) => {}
                Err(e) => note("birthday", raw, e),
            },
            Col::Follows => match parse_follows(raw) {
                Ok(v) => row.follows = v,
                Err(e) => note(&column("follows", i), raw, e),
            },
            Col::LastInteraction => match parse_last_interaction(raw, tz, now) {
                Ok(v) => row.last_interaction = v,
                Err(e) => note(&column("last_interaction", i), raw, e),
            },
            Col::Tags => {
                for t in raw.split(';').map(str::trim).filter(|t| !t.is_empty()) {
                    if t.chars().count() > 64 || t.chars().any(char::is_control) {
                        note("tag", t, Invalid::Tag);
                    } else if !row.tags.iter().any(|x| x == t) {
                        row.tags.push(t.to_string());
                    }
                }
            }
            Col::Field(f) => match parse_field_value(raw) {
                Ok(Some(v)) => row.fields.push((field_names[*f].clone(), v)),
                Ok(None) => {}
                Err(e) => note(&field_names[*f], raw, e),
            },
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    if row.user_id.is_none() && row.phone.is_none() && row.email.is_none() {
        return Err(tr(lang, "contacts.import.no_id").into_owned());
    }
    Ok(row)
}

/// Which contact each row is, across the whole file.
#[derive(Default)]
struct Resolver {
    /// Contacts this import has written (so a later row for one of them is an update).
    written: HashSet<String>,
    by_phone: HashMap<String, String>,
    by_email: HashMap<String, String>,
}

async fn flush(
    store: &DynStore,
    batch: &mut Vec<Row>,
    r: &mut Resolver,
    opts: &ImportOptions,
    report: &mut ImportReport,
    now: i64,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    // Phones and emails not seen earlier in this file: ask the database once for the batch.
    let mut phones: Vec<String> = Vec::new();
    let mut emails: Vec<String> = Vec::new();
    for row in batch.iter().filter(|row| row.user_id.is_none()) {
        if let Some(p) = row.phone.as_ref().filter(|p| !r.by_phone.contains_key(*p)) {
            phones.push(p.clone());
        }
        if let Some(e) = row.email.as_ref().filter(|e| !r.by_email.contains_key(*e)) {
            emails.push(e.clone());
        }
    }
    phones.sort_unstable();
    phones.dedup();
    emails.sort_unstable();
    emails.dedup();
    let keys = store.find_contact_keys(&phones, &emails).await?;

    let mut ids = Vec::with_capacity(batch.len());
    for row in batch.iter() {
        let phone = row.phone.as_deref();
        let email = row.email.as_deref();
        let id = row
            .user_id
            .clone()
            .or_else(|| phone.and_then(|p| r.by_phone.get(p)).cloned())
            .or_else(|| email.and_then(|e| r.by_email.get(e)).cloned())
            .or_else(|| contact_id_for(&keys, phone, email))
            .expect("a valid row has a user_id, phone or email");
        if let Some(p) = phone {
            r.by_phone
                .entry(p.to_string())
                .or_insert_with(|| id.clone());
        }
        if let Some(e) = email {
            r.by_email
                .entry(e.to_string())
                .or_insert_with(|| id.clone());
        }
        ids.push(id);
    }
    let fresh: Vec<String> = {
        let mut v: Vec<String> = ids
            .iter()
            .filter(|i| !r.written.contains(*i))
            .cloned()
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let existing: HashSet<String> = store
        .existing_contact_ids(&fresh)
        .await?
        .into_iter()
        .collect();

    let mut changes = Vec::with_capacity(batch.len());
    let mut lists = Vec::new();
    for (row, id) in batch.drain(..).zip(ids) {
        if r.written.contains(&id) || existing.contains(&id) {
            report.updated += 1;
        } else {
            report.imported += 1;
        }
        if let Some(l) = &opts.list {
            lists.push(ListChange::Add {
                list: l.clone(),
                user_id: id.clone(),
            });
        }
        let mut ch = ContactChange::new(id.clone(), now);
        ch.display_name = row.name;
        ch.phone = row.phone;
        ch.email = row.email;
        ch.tags_add = row.tags;
        ch.fields_set = row.fields;
        ch.follows = row.follows;
        ch.interaction_at = row.last_interaction;
        changes.push(ch);
        r.written.insert(id);
    }
    store.import_contacts(&changes, &lists, now).await?;
    Ok(())
}

fn progress_bar(wanted: bool, total: u64) -> indicatif::ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn write_rejected(
    path: &Path,
    header: &::csv::StringRecord,
    rejected: &[Rejected],
) -> anyhow::Result<()> {
    // Flexible: a row rejected for having too many cells keeps them all.
    let mut w = ::csv::WriterBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("writing {}", path.display()))?;
    let mut head = vec!["line".to_string(), "reason".to_string()];
    head.extend(
        header
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string()),
    );
    w.write_record(&head)?;
    for r in rejected {
        let mut rec = vec![r.line.to_string(), r.reason.clone()];
        rec.extend(r.cells.iter().cloned());
        if rec.len() < head.len() {
            rec.resize(head.len(), String::new());
        }
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(())
}

/// Protects a cell from being run as a formula by a spreadsheet.
fn safe_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// Writes every contact (or the members of `list`) as CSV; returns how many.
pub async fn export(store: &DynStore, list: Option<&str>, out: impl Write) -> anyhow::Result<u64> {
    let fields: Vec<String> = store
        .contact_field_names()
        .await?
        .into_iter()
        .filter(|f| !COLUMNS.contains(&f.to_lowercase().as_str()))
        .collect();
    let mut w = ::csv::Writer::from_writer(out);
    let mut head: Vec<&str> = COLUMNS.to_vec();
    head.extend(fields.iter().map(String::as_str));
    w.write_record(&head)?;
    let mut after: Option<String> = None;
    let mut n = 0u64;
    loop {
        let ids = store.contact_ids_page(list, after.as_deref(), 1000).await?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        let contacts = store.load_contacts(&ids).await?;
        for id in &ids {
            let Some(c) = contacts.get(id) else { continue };
            let tags: Vec<&str> = c.tags.iter().map(String::as_str).collect();
            let mut rec: Vec<String> = vec![
                c.user_id.clone(),
                c.display_name.clone().unwrap_or_default(),
                c.phone.clone().unwrap_or_default(),
                c.email.clone().unwrap_or_default(),
                tags.join(";"),
                c.fields.get(BIRTHDAY_FIELD).cloned().unwrap_or_default(),
            ];
            let by_name: &BTreeMap<String, String> = &c.fields;
            rec.extend(
                fields
                    .iter()
                    .map(|f| by_name.get(f).cloned().unwrap_or_default()),
            );
            w.write_record(rec.iter().map(|s| safe_cell(s)))?;
            n += 1;
        }
        after = Some(last);
    }
    w.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_round_trip() {
        for v in ["=1+1", "+84", "-5", "@x", "plain", "'quoted"] {
            assert_eq!(cell(&safe_cell(v)), v, "{v}");
        }
    }

    #[test]
    fn header_needs_an_identifying_column() {
        let h = ::csv::StringRecord::from(vec!["name", "city"]);
        assert!(map_header(&h, Lang::En).is_err());
        let h = ::csv::StringRecord::from(vec!["\u{feff}Phone", "Name", "Quà tặng"]);
        let (cols, fields) = map_header(&h, Lang::En).unwrap();
        assert_eq!(cols, vec![Col::Phone, Col::Name, Col::Field(0)]);
        assert_eq!(fields, vec!["Quà tặng".to_string()]);
        let h = ::csv::StringRecord::from(vec!["phone", "PHONE"]);
        assert!(map_header(&h, Lang::En).is_err());
    }
}
