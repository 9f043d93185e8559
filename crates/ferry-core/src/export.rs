//! Building outbound files: RFC 4180 CSV, spreadsheet-formula neutralising, and per-contact
//! deduplication.

use std::io::{self, Write};

/// Writes RFC 4180 CSV: fields quoted when they hold a comma, quote, CR or LF; quotes doubled;
/// every record ends in CRLF; UTF-8 without a byte-order mark.
pub struct CsvWriter<W: Write> {
    out: W,
    neutralize: bool,
    line: String,
    rows: u64,
}

impl<W: Write> CsvWriter<W> {
    /// `neutralize`: prefix cells that a spreadsheet would run as a formula (see [`neutralize`]).
    pub fn new(out: W, neutralize: bool) -> Self {
        CsvWriter {
            out,
            neutralize,
            line: String::with_capacity(512),
            rows: 0,
        }
    }

    /// Writes one record.
    pub fn write_row<S: AsRef<str>>(&mut self, cells: &[S]) -> io::Result<()> {
        self.line.clear();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            let cell = cell.as_ref();
            let cell = if self.neutralize {
                neutralize(cell)
            } else {
                std::borrow::Cow::Borrowed(cell)
            };
            push_field(&mut self.line, &cell);
        }
        self.line.push_str("\r\n");
        self.rows += 1;
        self.out.write_all(self.line.as_bytes())
    }

    /// Records written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The output written so far (to hand a buffer's contents on and clear it).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The sink, with everything written so far.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn push_field(line: &mut String, cell: &str) {
    if cell
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        line.push('"');
        let mut parts = cell.split('"');
        if let Some(first) = parts.next() {
            line.push_str(first);
        }
        for part in parts {
            line.push_str("\"\"");
            line.push_str(part);
        }
        line.push('"');
    } else {
        line.push_str(cell);
    }
}

/// Makes a cell safe to open in a spreadsheet: a cell starting with `=`, `+`, `-` or `@` (or a
/// tab or carriage return, which some spreadsheets skip before such a character) gets a leading
/// apostrophe, so it is shown as text instead of run as a formula (OWASP "CSV injection").
///
/// A plain signed number (`+16175550101`, an E.164 phone; `-2.5`) is left alone: a spreadsheet
/// reads it as a number, never as a formula, and importers would keep the apostrophe.
pub fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('+' | '-') if is_signed_number(cell) => std::borrow::Cow::Borrowed(cell),
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => std::borrow::Cow::Owned(format!("'{cell}")),
        _ => std::borrow::Cow::Borrowed(cell),
    }
}

/// `+` or `-`, digits, and at most one decimal point between digits.
fn is_signed_number(cell: &str) -> bool {
    let digits = &cell[1..];
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "1"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(int) && all_digits(frac)
}

/// Deduplication by contact: for messages in window order, keeps each contact's latest message
/// and how many it had; the result is in the order of those latest messages.
pub fn latest_per_contact<M>(
    messages: impl IntoIterator<Item = M>,
    contact_of: impl Fn(&M) -> i64,
) -> Vec<(M, u64)> {
    let mut index: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut slots: Vec<Option<(M, u64)>> = Vec::new();
    for m in messages {
        let contact = contact_of(&m);
        match index.get(&contact) {
            Some(&i) => {
                let (_, count) = slots[i].take().expect("slot is filled");
                slots.push(Some((m, count + 1)));
                index.insert(contact, slots.len() - 1);
            }
            None => {
                slots.push(Some((m, 1)));
                index.insert(contact, slots.len() - 1);
            }
        }
    }
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4180_quoting_and_crlf() {
        let mut w = CsvWriter::new(Vec::new(), false);
        w.write_row(&["plain", "a,b", "say \"hi\"", "two\nlines", ""])
            .unwrap();
        w.write_row(&["é", "=SUM(A1)"]).unwrap();
        let bytes = w.into_inner();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\né,=SUM(A1)\r\n"
        );
    }

    #[test]
    fn neutralising_formula_cells() {
        let mut w = CsvWriter::new(Vec::new(), true);
        w.write_row(&["=1+1", "+1 617", "-2", "@SUM(1)", "ok", "a=b", "\t=x"])
            .unwrap();
        w.write_row(&["+16175550101", "-2.5", "+1.", "-.5", "-1+1", "+", "-"])
            .unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            "'=1+1,'+1 617,-2,'@SUM(1),ok,a=b,'\t=x\r\n+16175550101,-2.5,'+1.,'-.5,'-1+1,'+,'-\r\n"
        );
    }

    #[test]
    fn dedupe_keeps_each_contacts_latest_message_and_count() {
        let msgs = vec![
            (1, "a1"),
            (2, "b1"),
            (1, "a2"),
            (3, "c1"),
            (1, "a3"),
            (2, "b2"),
        ];
        let out = latest_per_contact(msgs, |m| m.0);
        assert_eq!(out, vec![((3, "c1"), 1), ((1, "a3"), 3), ((2, "b2"), 2)]);
    }

    proptest::proptest! {
        /// Whatever the cells hold, a CSV reader gets the same cells back.
        #[test]
        fn csv_round_trips(cells in proptest::collection::vec("[^\\u{feff}]{0,20}", 1..6)) {
            // A lone empty cell is an empty line, which no CSV reader can tell from no record.
            proptest::prop_assume!(cells != vec![String::new()]);
            let mut w = CsvWriter::new(Vec::new(), false);
            w.write_row(&cells).unwrap();
            let bytes = w.into_inner();
            let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
            let rec = r.records().next().unwrap().unwrap();
            let back: Vec<String> = rec.iter().map(str::to_string).collect();
            proptest::prop_assert_eq!(back, cells);
        }
    }
}
