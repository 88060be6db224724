//! Personalizing many cards in one run: `bank-tools card personalize --batch FILE.csv`.
//!
//! The CSV file has a header line naming its columns (any order); `#` lines and blank lines
//! are skipped; a cell may be double-quoted (`""` inside quotes is one `"`). Columns:
//!
//! | column | required | what |
//! |---|---|---|
//! | `reader` | yes | PC/SC reader holding the card, e.g. `Virtual PCD 00 00` |
//! | `serial` | yes | card serial, 1-16 of `A-Z 0-9 -`, unique in the file |
//! | `admin_key` | yes | the card's admin key file from `card create` |
//! | `pin` | yes | 4-8 digits |
//! | `puk` | yes | 8 digits |
//! | `out` | yes | token file to write (mode 0600, must not exist), unique in the file |
//! | `secret_file` | no | 32-byte secret (default: fresh random bytes) |
//! | `user_id`, `cert_sha256`, `iccid`, `tf_card_id`, `imei`, `sticker_id`, `user_identification` | no | identity materials (empty cell: not given) |
//!
//! Relative paths are taken from the CSV file's directory. The file holds PINs and PUKs, so
//! it must be mode 0600 like every secret file here; no PIN, PUK, secret or seed is ever
//! printed.
//!
//! [`load`] checks every row (formats, duplicates, files) before any card is touched and
//! reports all problems at once. [`run`] then personalizes the rows in file order. A reader
//! may appear on several rows: that is one reader with cards inserted one after another
//! (a real desk reader, or a vpcd slot where one `virtual-card` is stopped and the next
//! started); before reusing a reader, `run` waits for its card to be taken out and the next
//! one put in, so the card just made is never personalized again by mistake. A failed card
//! does not stop the batch.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use card_link::{Pcsc, Swap};
use zeroize::Zeroizing;

use crate::card::{self, CardToolError, Personalization, Personalized};
use crate::secret_file;
use crate::seed::{Materials, Secret, Tag};

const REQUIRED: [&str; 6] = ["reader", "serial", "admin_key", "pin", "puk", "out"];
const MATERIALS: [(&str, Option<Tag>); 7] = [
    ("user_id", Some(Tag::UserId)),
    ("cert_sha256", None),
    ("iccid", Some(Tag::Iccid)),
    ("tf_card_id", Some(Tag::TfCardId)),
    ("imei", Some(Tag::Imei)),
    ("sticker_id", Some(Tag::StickerId)),
    ("user_identification", Some(Tag::UserIdentification)),
];
const SECRET_FILE: &str = "secret_file";
/// Columns that hold secrets: their values never appear in a message.
const SECRET_COLUMNS: [&str; 2] = ["pin", "puk"];

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot read the batch file: {0}")]
    File(#[from] secret_file::SecretFileError),
    #[error("{}: {} problem(s), no card was touched:\n  {}", .file.display(), .problems.len(), .problems.join("\n  "))]
    Invalid { file: PathBuf, problems: Vec<String> },
}

/// One row as written, before its files are read. `Debug` hides the PIN and PUK.
pub struct Row {
    /// Line number in the file (1-based), for messages.
    pub line: usize,
    pub cells: HashMap<String, Zeroizing<String>>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_struct("Row");
        m.field("line", &self.line);
        let mut keys: Vec<&String> = self.cells.keys().collect();
        keys.sort();
        for k in keys {
            if SECRET_COLUMNS.contains(&k.as_str()) {
                m.field(k, &"<secret>");
            } else {
                m.field(k, &self.cells[k].as_str());
            }
        }
        m.finish()
    }
}

impl Row {
    /// The cell of `column`, `None` when absent or empty.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.cells.get(column).map(|v| v.as_str()).filter(|v| !v.is_empty())
    }
}

/// Splits one CSV line into cells: commas separate, `"..."` quotes (with `""` for `"`),
/// unquoted cells are trimmed.
fn split_line(line: &str) -> Result<Vec<Zeroizing<String>>, &'static str> {
    let mut cells = Vec::new();
    let mut cur = Zeroizing::new(String::new());
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' {
            if was_quoted || !cur.trim().is_empty() {
                return Err("a quote in the middle of a cell (quote the whole cell, and write \"\" for a quote)");
            }
            cur.clear();
            quoted = true;
            was_quoted = true;
        } else if c == ',' {
            cells.push(finish_cell(&mut cur, was_quoted));
            was_quoted = false;
        } else if was_quoted {
            if !c.is_whitespace() {
                return Err("text after a closing quote");
            }
        } else {
            cur.push(c);
        }
    }
    if quoted {
        return Err("a quote is not closed (cells cannot span lines)");
    }
    cells.push(finish_cell(&mut cur, was_quoted));
    Ok(cells)
}

fn finish_cell(cur: &mut Zeroizing<String>, quoted: bool) -> Zeroizing<String> {
    let cell = if quoted { Zeroizing::new(cur.as_str().to_owned()) } else { Zeroizing::new(cur.trim().to_owned()) };
    cur.clear();
    cell
}

fn known_column(name: &str) -> bool {
    REQUIRED.contains(&name) || name == SECRET_FILE || MATERIALS.iter().any(|(n, _)| *n == name)
}

/// Parses the text of a batch file into rows, checking the header and the shape of each row
/// (not yet the values). All problems are returned, each starting with its line number.
pub fn parse(text: &str) -> Result<Vec<Row>, Vec<String>> {
    let mut problems = Vec::new();
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((hline, header)) = lines.next() else {
        return Err(vec!["the file has no header line (e.g. reader,serial,admin_key,pin,puk,out)".to_owned()]);
    };
    let columns: Vec<String> = match split_line(header) {
        Ok(c) => c.iter().map(|c| c.to_ascii_lowercase()).collect(),
        Err(e) => return Err(vec![format!("line {hline} (header): {e}")]),
    };
    let mut seen = HashSet::new();
    for c in &columns {
        if !known_column(c) {
            problems.push(format!(
                "line {hline} (header): unknown column {c:?}; columns are {}, {SECRET_FILE}, {}",
                REQUIRED.join(", "),
                MATERIALS.map(|(n, _)| n).join(", ")
            ));
        } else if !seen.insert(c.as_str()) {
            problems.push(format!("line {hline} (header): column {c:?} appears twice"));
        }
    }
    for r in REQUIRED {
        if !columns.iter().any(|c| c == r) {
            problems.push(format!("line {hline} (header): required column {r:?} is missing"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut rows = Vec::new();
    for (line, text) in lines {
        match split_line(text) {
            Err(e) => problems.push(format!("line {line}: {e}")),
            Ok(cells) if cells.len() != columns.len() => problems.push(format!(
                "line {line}: {} cells, but the header has {} columns",
                cells.len(),
                columns.len()
            )),
            Ok(cells) => rows.push(Row { line, cells: columns.iter().cloned().zip(cells).collect() }),
        }
    }
    if rows.is_empty() && problems.is_empty() {
        problems.push("the file lists no cards".to_owned());
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// One card to personalize, checked and ready.
pub struct BatchCard {
    pub line: usize,
    pub reader: String,
    pub out: PathBuf,
    pub admin_key: Zeroizing<[u8; 32]>,
    pub job: Personalization,
}

impl std::fmt::Debug for BatchCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchCard")
            .field("line", &self.line)
            .field("serial", &self.job.serial)
            .field("reader", &self.reader)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Checks the values of the rows and reads their files (admin keys, secret files); relative
/// paths are taken from `base`. Every problem is reported, each with its line number.
pub fn prepare(rows: Vec<Row>, base: &Path) -> Result<Vec<BatchCard>, Vec<String>> {
    let mut problems = Vec::new();
    let mut serials: HashMap<String, usize> = HashMap::new();
    let mut outs: HashMap<PathBuf, usize> = HashMap::new();
    let mut cards = Vec::new();
    for row in rows {
        let line = row.line;
        let mut bad = |what: String| problems.push(format!("line {line}: {what}"));
        let get = |c: &str| row.get(c).unwrap_or_default();
        let (reader, serial) = (get("reader"), get("serial"));
        if reader.is_empty() {
            bad("the reader is empty".to_owned());
        }
        if !paysim_wire::CardSerial::is_valid(serial) {
            bad(format!("serial {serial:?} is not 1-16 characters of A-Z, 0-9 and '-'"));
        } else if let Some(first) = serials.insert(serial.to_owned(), line) {
            bad(format!("serial {serial} is already on line {first}"));
        }
        let pin = Zeroizing::new(get("pin").to_owned());
        let puk = Zeroizing::new(get("puk").to_owned());
        if let Err(e) = card_applet::pin::PinBlock::from_pin(&pin) {
            bad(format!("pin: {e}"));
        }
        if let Err(e) = card_applet::pin::PukBlock::from_puk(&puk) {
            bad(format!("puk: {e}"));
        }
        let out = if get("out").is_empty() {
            bad("out (the token file to write) is empty".to_owned());
            None
        } else {
            let out = resolve(base, get("out"));
            if let Some(first) = outs.insert(out.clone(), line) {
                bad(format!("out {} is already on line {first}", out.display()));
            } else if let Err(e) = secret_file::ensure_absent(&out) {
                bad(e.to_string());
            }
            Some(out)
        };
        let admin_key = if get("admin_key").is_empty() {
            bad("admin_key is empty".to_owned());
            None
        } else {
            card::read_admin_key(&resolve(base, get("admin_key"))).map_err(|e| bad(format!("admin_key: {e}"))).ok()
        };
        let secret = match row.get(SECRET_FILE) {
            Some(p) => {
                let p = resolve(base, p);
                secret_file::read_private(&p)
                    .map_err(|e| e.to_string())
                    .and_then(|raw| Secret::from_file_contents(&raw).map_err(|e| format!("{}: {e}", p.display())))
                    .map_err(|e| bad(format!("secret_file: {e}")))
                    .ok()
            }
            None => Secret::random()
                .map_err(|e| bad(format!("cannot get random bytes from the operating system: {e}")))
                .ok(),
        };
        let mut materials = Materials::new();
        for (column, tag) in MATERIALS {
            let Some(v) = row.get(column) else { continue };
            let added = match tag {
                Some(tag) => materials.add(tag, v.as_bytes()).map(|_| ()),
                None => materials.add_cert_sha256_hex(v).map(|_| ()),
            };
            if let Err(e) = added {
                bad(format!("{column}: {e}"));
            }
        }
        if let (Some(out), Some(admin_key), Some(secret)) = (out, admin_key, secret) {
            cards.push(BatchCard {
                line,
                reader: reader.to_owned(),
                out,
                admin_key,
                job: Personalization { serial: serial.to_owned(), pin, puk, secret, materials },
            });
        }
    }
    if problems.is_empty() {
        Ok(cards)
    } else {
        Err(problems)
    }
}

/// Reads the batch file (mode 0600: it holds PINs and PUKs), parses and checks every row.
pub fn load(file: &Path) -> Result<Vec<BatchCard>, BatchError> {
    let raw = secret_file::read_private(file)?;
    let invalid = |problems| BatchError::Invalid { file: file.to_owned(), problems };
    let text = std::str::from_utf8(&raw).map_err(|_| invalid(vec!["the file is not UTF-8 text".to_owned()]))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let rows = parse(text).map_err(invalid)?;
    prepare(rows, base).map_err(invalid)
}

/// Why one card of the batch failed.
#[derive(Debug, thiserror::Error)]
pub enum CardFailure {
    #[error(transparent)]
    Card(#[from] CardToolError),
    #[error(
        "the card in {reader:?} (line {previous_line}) was not taken out within {waited:?}; \
         not personalizing it again"
    )]
    NotRemoved { reader: String, previous_line: usize, waited: Duration },
    #[error("no new card was put into {reader:?} within {waited:?}")]
    NotInserted { reader: String, waited: Duration },
    #[error("waiting for the card swap in {reader:?}: {source}")]
    Wait {
        reader: String,
        #[source]
        source: card_link::Error,
    },
}

/// What [`run`] reports as it goes.
pub enum Event<'a> {
    /// `card` is next, in a reader used before: the operator must swap the card.
    Swap { card: &'a BatchCard, previous_line: usize },
    /// `card` is being personalized.
    Start { index: usize, card: &'a BatchCard },
    /// `card` is done.
    Done { index: usize, card: &'a BatchCard, result: &'a Result<Personalized, CardFailure> },
}

/// Personalizes the cards in order and returns one result per card; a failure does not stop
/// the batch. A reader used again waits (up to `swap_wait`) for its card to be taken out and
/// the next one put in.
pub fn run(
    cards: &[BatchCard],
    swap_wait: Duration,
    mut on: impl FnMut(Event<'_>),
) -> Vec<Result<Personalized, CardFailure>> {
    let mut last_line: HashMap<&str, usize> = HashMap::new();
    let mut results = Vec::with_capacity(cards.len());
    for (index, card) in cards.iter().enumerate() {
        let mut result = Ok(());
        if let Some(&previous_line) = last_line.get(card.reader.as_str()) {
            on(Event::Swap { card, previous_line });
            result = wait_for_swap(&card.reader, previous_line, swap_wait);
        }
        last_line.insert(&card.reader, card.line);
        on(Event::Start { index, card });
        let result = result.and_then(|()| {
            card::personalize(&card.reader, &card.admin_key, &card.job, &card.out).map_err(CardFailure::from)
        });
        on(Event::Done { index, card, result: &result });
        results.push(result);
    }
    results
}

/// Waits until `reader` is empty, then until it holds a card again, within `timeout` overall
/// (card-link's bounded `SCardGetStatusChange` waits).
fn wait_for_swap(reader: &str, previous_line: usize, timeout: Duration) -> Result<(), CardFailure> {
    let wait_err = |source| CardFailure::Wait { reader: reader.to_owned(), source };
    let swap = Pcsc::establish().and_then(|p| p.wait_swap(reader, timeout)).map_err(wait_err)?;
    match swap {
        Swap::Swapped => Ok(()),
        Swap::NotRemoved => Err(CardFailure::NotRemoved { reader: reader.to_owned(), previous_line, waited: timeout }),
        Swap::NotInserted => Err(CardFailure::NotInserted { reader: reader.to_owned(), waited: timeout }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "reader,serial,admin_key,pin,puk,out";

    fn problems(text: &str) -> Vec<String> {
        parse(text).unwrap_err()
    }

    #[test]
    fn cells_split_with_quotes_and_trimming() {
        let c = split_line(r#" Virtual PCD 00 00 , "a, ""b""" ,, x "#).unwrap();
        let c: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
        assert_eq!(c, ["Virtual PCD 00 00", "a, \"b\"", "", "x"]);
        assert_eq!(split_line("").unwrap().len(), 1);
        assert!(split_line(r#"a"b"#).is_err());
        assert!(split_line(r#""open"#).is_err());
        assert!(split_line(r#""a"b"#).is_err());
    }

    #[test]
    fn a_good_file_parses_in_any_column_order_with_comments() {
        let text = "# cards for branch 7\n\
                    serial,Reader,out,pin,puk,admin_key,user_id,imei\r\n\
                    \n\
                    PSIM-1,Virtual PCD 00 00,t/1.json,1234,12345678,k/1.admin,alice,\n\
                    # a comment between rows\n\
                    PSIM-2,\"Virtual PCD 00 01\",t/2.json,87654321,87654321,k/2.admin,,490154203237518\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 4);
        assert_eq!(rows[0].get("reader"), Some("Virtual PCD 00 00"));
        assert_eq!(rows[0].get("user_id"), Some("alice"));
        assert_eq!(rows[0].get("imei"), None);
        assert_eq!(rows[1].line, 6);
        assert_eq!(rows[1].get("reader"), Some("Virtual PCD 00 01"));
        assert_eq!(rows[1].get("imei"), Some("490154203237518"));
        let dbg = format!("{:?}", rows[1]);
        assert!(!dbg.contains("87654321") && dbg.contains("PSIM-2"), "{dbg}");
    }

    #[test]
    fn header_problems_are_named() {
        for (text, want) in [
            ("", "no header line"),
            ("# only a comment\n", "no header line"),
            ("reader,serial,admin_key,pin,puk\nr,S,k,1234,12345678\n", "\"out\" is missing"),
            (&format!("{HEAD},pinn\n"), "unknown column \"pinn\""),
            (&format!("{HEAD},serial\n"), "\"serial\" appears twice"),
            (&format!("{HEAD}\n"), "lists no cards"),
            (&format!("{HEAD}\nr,S,k,1234,12345678\n"), "line 2: 5 cells, but the header has 6"),
            (&format!("{HEAD}\nr,\"S,k,1234,12345678,o\n"), "line 2: a quote is not closed"),
        ] {
            let p = problems(text).join("\n");
            assert!(p.contains(want), "{text:?}: {p}");
        }
    }

    /// A directory with two factory cards' admin keys.
    fn keys() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for n in ["1", "2"] {
            card::create(&dir.path().join(format!("{n}.state")), &dir.path().join(format!("{n}.admin"))).unwrap();
        }
        dir
    }

    #[test]
    fn good_rows_become_cards_with_paths_from_the_file_directory() {
        let dir = keys();
        let text = format!(
            "{HEAD},user_id,cert_sha256\n\
             Virtual PCD 00 00,PSIM-00000001,1.admin,1234,12345678,t1.json,alice,{}\n\
             Virtual PCD 00 00,PSIM-00000002,{}/2.admin,123456,87654321,t2.json,,\n",
            "ab".repeat(32),
            dir.path().display()
        );
        let cards = prepare(parse(&text).unwrap(), dir.path()).unwrap();
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0].job.serial, "PSIM-00000001");
        assert_eq!(cards[0].out, dir.path().join("t1.json"));
        assert_eq!(*cards[0].admin_key, *card::read_admin_key(&dir.path().join("1.admin")).unwrap());
        assert!(!cards[0].job.materials.is_empty());
        assert!(cards[1].job.materials.is_empty());
        assert_eq!(cards[1].line, 3);
        let dbg = format!("{cards:?}");
        assert!(!dbg.contains("1234,") && !dbg.contains("12345678"), "{dbg}");
    }

    #[test]
    fn every_bad_value_is_reported_with_its_line_and_no_secret() {
        let dir = keys();
        std::fs::write(dir.path().join("exists.json"), b"{}").unwrap();
        let text = format!(
            "{HEAD},imei\n\
             R,PSIM-1,1.admin,1234,12345678,a.json,\n\
             R,PSIM-1,1.admin,1234,12345678,b.json,\n\
             R,psim-3,1.admin,12,1234567X,c.json,\n\
             R,PSIM-4,1.admin,1234,12345678,a.json,\n\
             R,PSIM-5,1.admin,1234,12345678,exists.json,\n\
             R,PSIM-6,missing.admin,1234,12345678,f.json,\n\
             ,PSIM-7,2.admin,98765,99887766,g.json,{}\n",
            "9".repeat(300)
        );
        let p = prepare(parse(&text).unwrap(), dir.path()).unwrap_err();
        let all = p.join("\n");
        for want in [
            "line 3: serial PSIM-1 is already on line 2",
            "line 4: serial \"psim-3\" is not",
            "line 4: pin: a PIN is 4 to 8 digits",
            "line 4: puk: a PUK is exactly 8 digits",
            "line 5: out",
            "is already on line 2",
            "line 6: ",
            "refusing to overwrite",
            "line 7: admin_key:",
            "line 8: the reader is empty",
            "line 8: imei:",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        for secret in ["98765", "99887766", "1234567X"] {
            assert!(!all.contains(secret), "{secret} leaked:\n{all}");
        }
    }

    #[test]
    fn load_refuses_a_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = keys();
        let f = dir.path().join("cards.csv");
        std::fs::write(&f, format!("{HEAD}\nR,PSIM-1,1.admin,1234,12345678,t.json\n")).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cards = load(&f).unwrap();
        assert_eq!(cards[0].admin_key.len(), 32);
        assert_eq!(cards[0].out, dir.path().join("t.json"));
    }
}
