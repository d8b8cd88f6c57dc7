//! CSV import/export of contacts against real databases (both backends), and the
//! `zaloflow contacts import|export` commands of the real binary.

mod common;

use std::path::Path;

use common::*;
use zaloflow::contacts::csv::{export, import, rejected_path, ImportOptions};
use zaloflow::store::{self, ContactChange};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    import_reports_bad_rows_and_reimport_updates,
    import_finds_existing_contacts_and_fills_a_list,
    export_round_trips,
);

const NOW: i64 = 1_700_000_000_000;

/// Line numbers: the header is line 1; the quoted address spans lines 10–11.
const FILE: &str = "user_id,name,phone,email,tags,birthday,gift,address
,Lan,0912 345 678,Lan@Example.vn,new_user;vip_customer,30/10/1999,Áo thun,
,Minh,,minh@example.vn,,1990-01-02,,
6142494823000000001,Hoa,+84 987 654 321,,interested,,Balo,
,Bad phone,12345,,,,,
,Bad email,,not-an-email,,,,
,No id,,,,,Áo mưa,
,Bad date,0988000111,,,31/02/2000,,
6.14249E+18,Mangled,,,,,,
,Quoted,0911 222 333,q@example.vn,a;b,,\"=HYPERLINK(\"\"x\"\")\",\"12 Lê Lợi
Quận 1\"
,Too many,0911000222,,,,,,extra
";

async fn store_of(db: &Db) -> store::DynStore {
    let s = store::open(db.url()).await.unwrap();
    s.migrate().await.unwrap();
    s
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn all_ids(s: &store::DynStore) -> Vec<String> {
    s.contact_ids_page(None, None, 10_000).await.unwrap()
}

async fn import_reports_bad_rows_and_reimport_updates(kind: &str) {
    let db = Db::new(kind).await;
    let s = store_of(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "contacts.csv", FILE);
    let opts = ImportOptions {
        batch: 2, // several transactions even for a small file
        lang: zaloflow::i18n::Lang::En,
        ..Default::default()
    };

    let r = import(&s, &path, &opts, NOW).await.unwrap();
    assert_eq!((r.imported, r.updated), (4, 0), "{r:?}");
    let rejected: Vec<(u64, &str)> = r
        .rejected
        .iter()
        .map(|x| (x.line, x.reason.as_str()))
        .collect();
    let lines: Vec<u64> = rejected.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [5, 6, 7, 8, 9, 12], "{rejected:?}");
    assert!(rejected[0].1.contains("phone \"12345\""), "{rejected:?}");
    assert!(rejected[1].1.contains("email"), "{rejected:?}");
    assert!(rejected[2].1.contains("no user_id, phone or email"));
    assert!(rejected[3].1.contains("birthday"));
    assert!(rejected[4].1.contains("spreadsheet"));
    assert!(rejected[5].1.contains("cells"));

    // The rejected rows, with their cells, in FILE.rejected.csv.
    let rej_file = r.rejected_file.clone().unwrap();
    assert_eq!(rej_file, rejected_path(&path));
    assert!(rej_file
        .to_string_lossy()
        .ends_with("contacts.csv.rejected.csv"));
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&rej_file)
        .unwrap();
    let head: Vec<&str> = rd.headers().unwrap().iter().take(3).collect();
    assert_eq!(head, ["line", "reason", "user_id"]);
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(&rows[0][0], "5");
    assert_eq!(&rows[0][3], "Bad phone");

    let lan = s.get_contact("phone:84912345678").await.unwrap().unwrap();
    assert_eq!(lan.display_name.as_deref(), Some("Lan"));
    assert_eq!(lan.email.as_deref(), Some("lan@example.vn"));
    assert_eq!(
        lan.tags.iter().map(String::as_str).collect::<Vec<_>>(),
        ["new_user", "vip_customer"]
    );
    assert_eq!(lan.fields["birthday"], "1999-10-30");
    assert_eq!(lan.fields["gift"], "Áo thun");
    assert!(!lan.fields.contains_key("address"));
    let hoa = s.get_contact("6142494823000000001").await.unwrap().unwrap();
    assert_eq!(hoa.phone.as_deref(), Some("84987654321"));
    assert_eq!(hoa.fields["gift"], "Balo");
    let quoted = s.get_contact("phone:84911222333").await.unwrap().unwrap();
    assert_eq!(quoted.fields["address"], "12 Lê Lợi\nQuận 1");
    assert_eq!(quoted.fields["gift"], "=HYPERLINK(\"x\")");
    assert!(s
        .get_contact("email:minh@example.vn")
        .await
        .unwrap()
        .is_some());
    assert_eq!(all_ids(&s).await.len(), 4);

    // Again: the same contacts are updated, none is duplicated.
    let r = import(&s, &path, &opts, NOW + 1).await.unwrap();
    assert_eq!(
        (r.imported, r.updated, r.rejected.len()),
        (0, 4, 6),
        "{r:?}"
    );
    assert_eq!(all_ids(&s).await.len(), 4);

    // Once the file is clean, a stale rejected file goes away.
    let clean = FILE
        .lines()
        .take(4)
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    std::fs::write(&path, clean).unwrap();
    let r = import(&s, &path, &opts, NOW + 2).await.unwrap();
    assert!(r.rejected.is_empty() && r.rejected_file.is_none());
    assert!(!rejected_path(&path).exists());
}

async fn import_finds_existing_contacts_and_fills_a_list(kind: &str) {
    let db = Db::new(kind).await;
    let s = store_of(&db).await;
    // A Zalo follower whose phone we know, and one known by email.
    let mut zalo = ContactChange::new("8958041078911298472", NOW);
    zalo.phone = Some("84912345678".into());
    zalo.tags_add = vec!["vip_customer".into()];
    let mut mail = ContactChange::new("4339761418830368433", NOW);
    mail.email = Some("Minh@Example.vn".into());
    s.import_contacts(&[zalo, mail], &[], NOW).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    // `;`-separated, with a byte-order mark, as some spreadsheets write it.
    let path = write(
        dir.path(),
        "sale.csv",
        "\u{feff}Phone;Email;Name;Quà tặng\n0912345678;;Lan;Áo thun\n;minh@example.vn;Minh;\n0933444555;;Nam;Balo\n0933444555;nam@example.vn;;\n",
    );
    let opts = ImportOptions {
        list: Some("Mùa hè".into()),
        ..Default::default()
    };
    let r = import(&s, &path, &opts, NOW).await.unwrap();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    // Two existing contacts, one new one (written twice: the second row updates it).
    assert_eq!((r.imported, r.updated), (1, 3));
    assert_eq!(all_ids(&s).await.len(), 3);
    let lan = s.get_contact("8958041078911298472").await.unwrap().unwrap();
    assert_eq!(lan.display_name.as_deref(), Some("Lan"));
    assert_eq!(lan.fields["Quà tặng"], "Áo thun");
    assert!(
        lan.tags.contains("vip_customer"),
        "tags are added, not replaced"
    );
    let nam = s.get_contact("phone:84933444555").await.unwrap().unwrap();
    assert_eq!(nam.display_name.as_deref(), Some("Nam"));
    assert_eq!(nam.email.as_deref(), Some("nam@example.vn"));
    let members: Vec<String> = s
        .list_members("Mùa hè", None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(
        members,
        [
            "4339761418830368433",
            "8958041078911298472",
            "phone:84933444555"
        ]
    );
}

async fn export_round_trips(kind: &str) {
    let db = Db::new(kind).await;
    let s = store_of(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "in.csv", FILE);
    let opts = ImportOptions {
        list: Some("A".into()),
        ..Default::default()
    };
    import(&s, &path, &opts, NOW).await.unwrap();
    let mut other = ContactChange::new("not-on-the-list", NOW);
    other.display_name = Some("Other".into());
    s.import_contacts(&[other], &[], NOW).await.unwrap();

    let mut first = Vec::new();
    assert_eq!(export(&s, None, &mut first).await.unwrap(), 5);
    let text = String::from_utf8(first.clone()).unwrap();
    assert!(
        text.starts_with("user_id,name,phone,email,tags,birthday,address,gift\n"),
        "{text}"
    );
    assert!(
        text.contains("phone:84912345678,Lan,84912345678,lan@example.vn,new_user;vip_customer,1999-10-30,,Áo thun\n"),
        "{text}"
    );
    // A formula-like value is defused for spreadsheets.
    assert!(text.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{text}");

    let mut listed = Vec::new();
    assert_eq!(export(&s, Some("A"), &mut listed).await.unwrap(), 4);
    assert!(!String::from_utf8(listed)
        .unwrap()
        .contains("not-on-the-list"));

    // Import the export into an empty database: its export is the same, byte for byte.
    let db2 = Db::new(kind).await;
    let s2 = store_of(&db2).await;
    let exported = write(dir.path(), "export.csv", &text);
    let r = import(&s2, &exported, &ImportOptions::default(), NOW)
        .await
        .unwrap();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert_eq!((r.imported, r.updated), (5, 0));
    let mut second = Vec::new();
    export(&s2, None, &mut second).await.unwrap();
    assert_eq!(String::from_utf8(second).unwrap(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_import_then_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let path = write(dir.path(), "contacts.csv", FILE);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_zaloflow"))
            .args(args)
            .current_dir(dir.path())
            .env("DATABASE_URL", &db)
            .env("ZALOFLOW_LANG", "en")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let report = run(&[
        "contacts",
        "import",
        path.to_str().unwrap(),
        "--list",
        "VIP",
    ]);
    assert!(
        report.contains("imported 4, updated 0, rejected 6"),
        "{report}"
    );
    assert!(report.contains("line 5: phone \"12345\""), "{report}");
    assert!(report.contains("contacts.csv.rejected.csv"), "{report}");
    let again = run(&["contacts", "import", path.to_str().unwrap()]);
    assert!(again.contains("imported 0, updated 4"), "{again}");

    let said = run(&["contacts", "export", "--list", "VIP", "-o", "out.csv"]);
    assert!(said.contains("exported 4 contacts"), "{said}");
    let out = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    assert_eq!(out.lines().count(), 1 + 4 + 1, "{out}"); // header, 4 rows, one cell with a line break
    let stdout = run(&["contacts", "export"]);
    assert_eq!(stdout, out);
}
