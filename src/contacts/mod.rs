//! Contact data from outside — form registrations and CSV files: parse and normalise names,
//! phone numbers, emails, birthdays and custom fields (each error says what is wrong, for a
//! person to read), and find the contact a phone or email identifies.
//!
//! Contact ids are Zalo user ids. A contact known only from a form or a file gets an id made
//! from what identifies it: `phone:84912345678`, else `email:an@example.vn`. Before making
//! one, an existing contact with the same phone (then the same email) is looked up and used,
//! so one person stays one record.

pub mod csv;
pub mod sync;

use crate::store::ContactKeys;

/// The custom field that holds a birthday, as `YYYY-MM-DD`.
pub const BIRTHDAY_FIELD: &str = "birthday";
/// Names that a form or file may not use as custom fields.
pub const RESERVED_FIELDS: &[&str] = &["user_id", "contact_id", "tags"];
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_FIELD_NAME_CHARS: usize = 64;
pub const MAX_FIELD_VALUE_CHARS: usize = 2000;

/// Why a value from outside is refused. Shown in English (`Display`: the admin API's and the
/// forms' error messages) or in the staff's language ([`Invalid::words`]: `contacts import`
/// and its rejected-rows file; `locales/contacts.yml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    TooLong(usize),
    Control,
    PhoneChar(char),
    PhonePlus,
    PhoneLength,
    Email,
    Date,
    Year(i32),
    FieldEmpty,
    FieldTooLong(usize),
    FieldControl,
    Reserved(String),
    ContactId,
    Spreadsheet,
    Follows,
    Time,
    ClockChange,
    Future,
    Before2000,
    Tag,
}

impl Invalid {
    /// The reason in `lang`.
    pub fn words(&self, lang: crate::i18n::Lang) -> String {
        let (key, args): (&str, Vec<(&str, String)>) = match self {
            Invalid::TooLong(n) => ("too_long", vec![("n", n.to_string())]),
            Invalid::Control => ("control", vec![]),
            Invalid::PhoneChar(c) => ("phone_char", vec![("c", format!("{c:?}"))]),
            Invalid::PhonePlus => ("phone_plus", vec![]),
            Invalid::PhoneLength => ("phone_length", vec![]),
            Invalid::Email => ("email", vec![]),
            Invalid::Date => ("date", vec![]),
            Invalid::Year(y) => ("year", vec![("year", y.to_string())]),
            Invalid::FieldEmpty => ("field_empty", vec![]),
            Invalid::FieldTooLong(n) => ("field_too_long", vec![("n", n.to_string())]),
            Invalid::FieldControl => ("field_control", vec![]),
            Invalid::Reserved(name) => ("reserved", vec![("name", format!("{name:?}"))]),
            Invalid::ContactId => ("contact_id", vec![]),
            Invalid::Spreadsheet => ("spreadsheet", vec![]),
            Invalid::Follows => ("follows", vec![]),
            Invalid::Time => ("time", vec![]),
            Invalid::ClockChange => ("clock_change", vec![]),
            Invalid::Future => ("future", vec![]),
            Invalid::Before2000 => ("before_2000", vec![]),
            Invalid::Tag => ("tag", vec![]),
        };
        crate::i18n::words(lang, &format!("contacts.invalid.{key}"), &args)
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.words(crate::i18n::Lang::En))
    }
}

/// A display name: trimmed, at most 200 characters, no control characters. Empty = none.
pub fn parse_name(raw: &str) -> Result<Option<String>, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(Invalid::TooLong(MAX_NAME_CHARS));
    }
    if s.chars().any(char::is_control) {
        return Err(Invalid::Control);
    }
    Ok(Some(s.to_string()))
}

/// A phone number in the international form `84…` (Vietnamese `0912 345 678`, `+84 912…`,
/// `84912…`; other countries with a leading `+`). Empty = none.
pub fn parse_phone(raw: &str) -> Result<Option<String>, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_digit() || " +-.()".contains(*c)))
    {
        return Err(Invalid::PhoneChar(c));
    }
    if s.chars().skip(1).any(|c| c == '+') {
        return Err(Invalid::PhonePlus);
    }
    let international = s.starts_with('+');
    match crate::engine::normalise_phone(s) {
        // Vietnam: 84 + 9 digits (mobile) or 10 (landline).
        Some(p) if p.starts_with("84") && (11..=12).contains(&p.len()) => Ok(Some(p)),
        Some(p) if international && !p.starts_with("84") => Ok(Some(p)),
        _ => Err(Invalid::PhoneLength),
    }
}

/// An email address, lower-cased. Empty = none.
pub fn parse_email(raw: &str) -> Result<Option<String>, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || Err(Invalid::Email);
    if s.len() > 254 {
        return bad();
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return bad();
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c) || !c.is_ascii());
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.chars().count() >= 2);
    if !(local_ok && domain_ok) {
        return bad();
    }
    Ok(Some(s.to_lowercase()))
}

/// A birthday as `DD/MM/YYYY` (also `D/M/YYYY`, `DD-MM-YYYY`) or `YYYY-MM-DD`, returned as
/// `YYYY-MM-DD`. Empty = none.
pub fn parse_birthday(raw: &str) -> Result<Option<String>, Invalid> {
    use chrono::NaiveDate;
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
        .or_else(|_| NaiveDate::parse_from_str(s, "%d-%m-%Y"))
        .map_err(|_| Invalid::Date)?;
    let year = chrono::Datelike::year(&date);
    if !(1900..=2100).contains(&year) {
        return Err(Invalid::Year(year));
    }
    Ok(Some(date.format("%Y-%m-%d").to_string()))
}

/// A custom field name: trimmed, 1–64 characters, no control characters, not reserved.
pub fn parse_field_name(raw: &str) -> Result<String, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(Invalid::FieldEmpty);
    }
    if s.chars().count() > MAX_FIELD_NAME_CHARS {
        return Err(Invalid::FieldTooLong(MAX_FIELD_NAME_CHARS));
    }
    if s.chars().any(char::is_control) {
        return Err(Invalid::FieldControl);
    }
    if RESERVED_FIELDS.contains(&s.to_ascii_lowercase().as_str()) {
        return Err(Invalid::Reserved(s.to_string()));
    }
    Ok(s.to_string())
}

/// A custom field value: trimmed, at most 2000 characters; line breaks and tabs allowed,
/// other control characters not. Empty = none (the stored value is left alone).
pub fn parse_field_value(raw: &str) -> Result<Option<String>, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > MAX_FIELD_VALUE_CHARS {
        return Err(Invalid::TooLong(MAX_FIELD_VALUE_CHARS));
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Invalid::Control);
    }
    Ok(Some(s.to_string()))
}

/// A contact id from a file: 1–128 characters without spaces or control characters, and not
/// a number a spreadsheet turned into `1.23E+18`.
pub fn parse_user_id(raw: &str) -> Result<Option<String>, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 128 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Invalid::ContactId);
    }
    let upper = s.to_ascii_uppercase();
    if let Some((mantissa, exp)) = upper.split_once("E+") {
        if !mantissa.is_empty()
            && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.')
            && exp.chars().all(|c| c.is_ascii_digit())
        {
            return Err(Invalid::Spreadsheet);
        }
    }
    Ok(Some(s.to_string()))
}

/// The contact a phone or email identifies: an existing one (phone first, then email), else
/// a new id made from the phone, else from the email. `None` when there is neither.
pub fn contact_id_for(
    keys: &ContactKeys,
    phone: Option<&str>,
    email: Option<&str>,
) -> Option<String> {
    if let Some(id) = phone.and_then(|p| keys.by_phone.get(p)) {
        return Some(id.clone());
    }
    if let Some(id) = email.and_then(|e| keys.by_email.get(&e.to_lowercase())) {
        return Some(id.clone());
    }
    new_contact_id(phone, email)
}

/// The id of a contact known only by phone or email.
pub fn new_contact_id(phone: Option<&str>, email: Option<&str>) -> Option<String> {
    match (phone, email) {
        (Some(p), _) => Some(format!("phone:{p}")),
        (None, Some(e)) => Some(format!("email:{}", e.to_lowercase())),
        (None, None) => None,
    }
}

/// `zaloflow contacts …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Import contacts from a CSV file (columns: user_id, name, phone, email, tags, birthday,
    /// follows, last_interaction, any other column = custom field). Rejected rows go to
    /// FILE.rejected.csv.
    Import {
        file: std::path::PathBuf,
        /// Also put every imported contact on this list.
        #[arg(long)]
        list: Option<String>,
        /// Rows per transaction.
        #[arg(long, default_value_t = 5000)]
        batch: usize,
    },
    /// Read the OA's followers from Zalo (names, follow status, last interaction, tags) into
    /// the contacts, through the rate limiter; resumes an interrupted run; safe while `serve`
    /// runs (it then runs the sync and this follows its progress).
    Sync,
    /// Export contacts as CSV (the columns import reads).
    Export {
        /// Only the members of this list.
        #[arg(long)]
        list: Option<String>,
        /// Write here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
    },
}

/// Runs a `contacts` subcommand against the configured database.
pub async fn run(config: &crate::config::Config, command: Command) -> anyhow::Result<()> {
    let store = crate::wiring::open_store(config).await?;
    match command {
        Command::Import { file, list, batch } => {
            let opts = csv::ImportOptions {
                list,
                batch,
                progress: true,
                tz: config.tz,
                lang: config.lang,
            };
            let now = crate::clock::system_now();
            let report = csv::import(&store, &file, &opts, now).await?;
            print_report(&report, config.lang);
        }
        Command::Sync => return sync::command(config).await,
        Command::Export { list, output } => {
            let n = match &output {
                Some(path) => {
                    let f = std::fs::File::create(path)
                        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                    csv::export(&store, list.as_deref(), std::io::BufWriter::new(f)).await?
                }
                None => csv::export(&store, list.as_deref(), std::io::stdout().lock()).await?,
            };
            if let Some(path) = output {
                let file = path.display().to_string();
                let done = [("n", n.to_string()), ("file", file)];
                println!(
                    "{}",
                    crate::i18n::words(config.lang, "contacts.export.done", &done)
                );
            }
        }
    }
    Ok(())
}

/// How many rejected rows the terminal report lists (the file has all of them).
const REPORT_REJECTED_LINES: usize = 100;

fn print_report(r: &csv::ImportReport, lang: crate::i18n::Lang) {
    use crate::i18n::words;
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{}",
        words(
            lang,
            "contacts.import.summary",
            &[
                ("rows", r.rows.to_string()),
                ("secs", format!("{secs:.2}")),
                ("rate", format!("{:.0}", r.rows as f64 / secs.max(1e-9))),
                ("imported", r.imported.to_string()),
                ("updated", r.updated.to_string()),
                ("rejected", r.rejected.len().to_string()),
            ]
        )
    );
    if let Some(f) = &r.rejected_file {
        let file = f.display().to_string();
        println!(
            "{}",
            words(lang, "contacts.import.rejected_head", &[("file", file)])
        );
        for x in r.rejected.iter().take(REPORT_REJECTED_LINES) {
            let line = words(
                lang,
                "contacts.import.line",
                &[("line", x.line.to_string()), ("reason", x.reason.clone())],
            );
            println!("  {line}");
        }
        if r.rejected.len() > REPORT_REJECTED_LINES {
            let n = r.rejected.len() - REPORT_REJECTED_LINES;
            println!(
                "  {}",
                words(lang, "contacts.import.more", &[("n", n.to_string())])
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(
            parse_phone(" 0912 345 678 ").unwrap().as_deref(),
            Some("84912345678")
        );
        assert_eq!(
            parse_phone("+84 (912) 345-678").unwrap().as_deref(),
            Some("84912345678")
        );
        assert_eq!(
            parse_phone("84912345678").unwrap().as_deref(),
            Some("84912345678")
        );
        assert_eq!(parse_phone("").unwrap(), None);
        assert_eq!(
            parse_phone("+1 415 555 0100").unwrap().as_deref(),
            Some("14155550100")
        );
        for bad in [
            "12345",
            "call 0912345678",
            "0912+345678",
            "abc",
            "09123456789012345",
            "9123456789",
        ] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            parse_email(" An.Nguyen@Example.VN ").unwrap().as_deref(),
            Some("an.nguyen@example.vn")
        );
        assert_eq!(
            parse_email("a+tag@sub.example.com").unwrap().as_deref(),
            Some("a+tag@sub.example.com")
        );
        for bad in [
            "a@b", "@b.vn", "a@.vn", "a b@c.vn", "a@b..vn", "a@@b.vn", "a@b.c", "a@-b.vn",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn birthdays() {
        assert_eq!(
            parse_birthday("30/10/1999").unwrap().as_deref(),
            Some("1999-10-30")
        );
        assert_eq!(
            parse_birthday("1/2/2000").unwrap().as_deref(),
            Some("2000-02-01")
        );
        assert_eq!(
            parse_birthday("1999-10-30").unwrap().as_deref(),
            Some("1999-10-30")
        );
        assert!(parse_birthday("31/02/2000").is_err());
        assert!(parse_birthday("10/30/1999").is_err());
        assert!(parse_birthday("1800-01-01").is_err());
    }

    #[test]
    fn fields_and_ids() {
        assert_eq!(parse_field_name(" Quà tặng ").unwrap(), "Quà tặng");
        assert!(parse_field_name("tags").is_err());
        assert!(parse_field_name("User_ID").is_err());
        assert!(parse_field_name("").is_err());
        assert_eq!(
            parse_field_value("  Áo thun ").unwrap().as_deref(),
            Some("Áo thun")
        );
        assert!(parse_field_value("a\u{0}b").is_err());
        assert_eq!(
            parse_user_id("6142494823000000001").unwrap().as_deref(),
            Some("6142494823000000001")
        );
        assert!(parse_user_id("6.14249E+18").is_err());
        assert!(parse_user_id("a b").is_err());
    }

    #[test]
    fn ids_prefer_existing_contacts() {
        let mut keys = ContactKeys::default();
        assert_eq!(
            contact_id_for(&keys, Some("84912345678"), Some("a@b.vn")).as_deref(),
            Some("phone:84912345678")
        );
        assert_eq!(
            contact_id_for(&keys, None, Some("A@b.vn")).as_deref(),
            Some("email:a@b.vn")
        );
        assert_eq!(contact_id_for(&keys, None, None), None);
        keys.by_email.insert("a@b.vn".into(), "zalo-2".into());
        assert_eq!(
            contact_id_for(&keys, Some("84912345678"), Some("a@b.vn")).as_deref(),
            Some("zalo-2")
        );
        keys.by_phone.insert("84912345678".into(), "zalo-1".into());
        assert_eq!(
            contact_id_for(&keys, Some("84912345678"), Some("a@b.vn")).as_deref(),
            Some("zalo-1")
        );
    }
}
