//! Splits CSV text into rows as the `csv` crate reads them (RFC 4180, leniently), except for a
//! quoted field that runs past the end of its line and does not end cleanly: never closed, closed
//! by what is plainly the opening quote of a later field, or leaving its row with the wrong number
//! of cells. The `csv` crate reads such a field to the next quote or to the end of the file, so
//! one unbalanced quote swallowed every row after it. Here the row is reported as
//! [`Framed::UnclosedQuote`] at the line where the quote began, and reading resumes at the next
//! line: the mistake costs that one row.

use std::io::{self, BufRead};

/// A quoted field longer than this that spans lines is taken for an unclosed quote without
/// reading on to the end of the file (and holding all of it in memory).
const MAX_QUOTED_BYTES: usize = 1 << 20;

/// The cells of one row.
#[derive(Debug, Default)]
pub(crate) struct Record {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Record {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// The number of cells.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The cells as bytes.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let cell = &self.bytes[start..end];
            start = end;
            cell
        })
    }
}

/// What [`CsvRows::next`] read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framed {
    /// A row, now in the record; `line` is the line it starts on (1-based).
    Row { line: u64 },
    /// A quoted field began on `line`, in cell `column` (0-based), and did not end cleanly. The
    /// record is empty; the next row read starts on the line after `line`.
    UnclosedQuote { line: u64, column: usize },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    StartField,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the end of the field, or the first of a doubled quote.
    QuoteInQuoted,
}

/// Reads rows from UTF-8 (or any ASCII-compatible) CSV text.
pub(crate) struct CsvRows<R> {
    src: R,
    /// Bytes read past a bad row's first line, to be read again before `src`.
    replay: Vec<u8>,
    replay_pos: usize,
    /// The line the next row starts on.
    line: u64,
    /// The cells a row must have; a row with a line-spanning quoted field and any other number
    /// of cells is taken for an unclosed quote. `None` for the header.
    expect: Option<usize>,
    /// The bytes after the current row's first line (kept only once a quoted field spans lines).
    rest: Vec<u8>,
}

impl<R: BufRead> CsvRows<R> {
    pub(crate) fn new(src: R) -> Self {
        CsvRows {
            src,
            replay: Vec::new(),
            replay_pos: 0,
            line: 1,
            expect: None,
            rest: Vec::new(),
        }
    }

    /// From now on, rows should have `cells` cells (the header's).
    pub(crate) fn expect_cells(&mut self, cells: usize) {
        self.expect = Some(cells);
    }

    /// Reads the next row into `rec`; `None` at the end. Blank lines are skipped.
    pub(crate) fn next(&mut self, rec: &mut Record) -> io::Result<Option<Framed>> {
        rec.clear();
        self.rest.clear();
        let mut start_line = self.line;
        let mut state = State::StartField;
        // Whether the current quoted field holds a line break.
        let mut field_spans = false;
        // The first quoted field of the row that holds a line break (its cell index).
        let mut spanning: Option<usize> = None;
        let mut bad_close = false;
        let mut any = false;
        let mut ended = false;
        'fill: loop {
            let from_replay = self.replay_pos < self.replay.len();
            let buf: &[u8] = if from_replay {
                &self.replay[self.replay_pos..]
            } else {
                self.src.fill_buf()?
            };
            if buf.is_empty() {
                break 'fill;
            }
            let mut used = 0;
            for &b in buf {
                used += 1;
                if spanning.is_some() {
                    self.rest.push(b);
                }
                if b == b'\n' {
                    self.line += 1;
                }
                match state {
                    State::StartField => match b {
                        b'"' => {
                            state = State::Quoted;
                            field_spans = false;
                            any = true;
                        }
                        b',' => {
                            rec.ends.push(rec.bytes.len());
                            any = true;
                        }
                        b'\n' | b'\r' => {
                            if any {
                                rec.ends.push(rec.bytes.len());
                                ended = true;
                                break;
                            }
                            // A blank line: not a row.
                            start_line = self.line;
                        }
                        _ => {
                            rec.bytes.push(b);
                            state = State::Unquoted;
                            any = true;
                        }
                    },
                    State::Unquoted => match b {
                        b',' => {
                            rec.ends.push(rec.bytes.len());
                            state = State::StartField;
                        }
                        b'\n' | b'\r' => {
                            rec.ends.push(rec.bytes.len());
                            ended = true;
                            break;
                        }
                        _ => rec.bytes.push(b),
                    },
                    State::Quoted => match b {
                        b'"' => state = State::QuoteInQuoted,
                        _ => {
                            if b == b'\n' && spanning.is_none() {
                                spanning = Some(rec.ends.len());
                            }
                            field_spans |= b == b'\n';
                            rec.bytes.push(b);
                        }
                    },
                    State::QuoteInQuoted => match b {
                        b'"' => {
                            rec.bytes.push(b);
                            state = State::Quoted;
                        }
                        b',' => {
                            rec.ends.push(rec.bytes.len());
                            state = State::StartField;
                        }
                        b'\n' | b'\r' => {
                            rec.ends.push(rec.bytes.len());
                            ended = true;
                            break;
                        }
                        _ => {
                            // Text after a closing quote: the csv crate keeps it; after a
                            // field that spanned lines it means the quote closed on the
                            // opening quote of a later field.
                            if field_spans {
                                bad_close = true;
                                break;
                            }
                            rec.bytes.push(b);
                            state = State::Unquoted;
                        }
                    },
                }
            }
            if from_replay {
                self.replay_pos += used;
            } else {
                self.src.consume(used);
            }
            if ended || bad_close {
                break 'fill;
            }
            if state == State::Quoted && field_spans && self.rest.len() > MAX_QUOTED_BYTES {
                break 'fill;
            }
        }
        if !ended && any && state != State::Quoted {
            // The last row, without a line break after it.
            rec.ends.push(rec.bytes.len());
            ended = true;
        }
        let unclosed = state == State::Quoted
            || bad_close
            || (spanning.is_some() && self.expect.is_some_and(|n| n != rec.len()));
        if unclosed {
            let column = spanning.unwrap_or(rec.ends.len());
            if spanning.is_some() {
                // Read everything after the quote's first line again.
                let mut replay = std::mem::take(&mut self.rest);
                replay.extend_from_slice(&self.replay[self.replay_pos..]);
                self.replay = replay;
                self.replay_pos = 0;
                self.line = start_line + 1;
            }
            rec.clear();
            return Ok(Some(Framed::UnclosedQuote {
                line: start_line,
                column,
            }));
        }
        Ok(ended.then_some(Framed::Row { line: start_line }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, expect: Option<usize>) -> Vec<Result<Vec<String>, (u64, usize)>> {
        let mut r = CsvRows::new(text.as_bytes());
        if let Some(n) = expect {
            r.expect_cells(n);
        }
        let mut rec = Record::default();
        let mut out = Vec::new();
        while let Some(f) = r.next(&mut rec).unwrap() {
            out.push(match f {
                Framed::Row { .. } => Ok(rec
                    .iter()
                    .map(|c| String::from_utf8(c.to_vec()).unwrap())
                    .collect()),
                Framed::UnclosedQuote { line, column } => Err((line, column)),
            });
        }
        out
    }

    fn ok(cells: &[&str]) -> Result<Vec<String>, (u64, usize)> {
        Ok(cells.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn an_unclosed_quote_costs_one_row() {
        let text = "a,b\n1,\"two\n3,4\n5,6\n";
        assert_eq!(
            rows(text, Some(2)),
            vec![
                ok(&["a", "b"]),
                Err((2, 1)),
                ok(&["3", "4"]),
                ok(&["5", "6"])
            ]
        );
    }

    #[test]
    fn a_quote_closed_by_a_later_fields_opening_quote_costs_one_row() {
        let text = "a,b\n\"Smith,1\n2,3\n\"Boston, MA\",4\n";
        assert_eq!(
            rows(text, Some(2)),
            vec![
                ok(&["a", "b"]),
                Err((2, 0)),
                ok(&["2", "3"]),
                ok(&["Boston, MA", "4"])
            ]
        );
    }

    #[test]
    fn a_line_break_in_a_well_formed_quoted_field_is_kept() {
        let text = "a,b\n\"x\ny\",2\r\n3,\"say \"\"hi\"\"\"\n";
        assert_eq!(
            rows(text, Some(2)),
            vec![
                ok(&["a", "b"]),
                ok(&["x\ny", "2"]),
                ok(&["3", "say \"hi\""])
            ]
        );
    }

    #[test]
    fn a_spanning_row_with_the_wrong_cells_resumes_at_the_next_line() {
        let text = "a,b\n1,\"x\n2,3\",4\n5,6";
        assert_eq!(
            rows(text, Some(2)),
            vec![
                ok(&["a", "b"]),
                Err((2, 1)),
                ok(&["2", "3\"", "4"]),
                ok(&["5", "6"])
            ]
        );
    }

    #[test]
    fn an_unclosed_quote_on_the_last_line_is_reported() {
        assert_eq!(rows("a\n\"x", Some(1)), vec![ok(&["a"]), Err((2, 0))]);
    }

    #[test]
    fn blank_lines_and_empty_cells() {
        assert_eq!(
            rows("a,b\n\n,\n1,\n\"\",2", None),
            vec![
                ok(&["a", "b"]),
                ok(&["", ""]),
                ok(&["1", ""]),
                ok(&["", "2"])
            ]
        );
    }

    proptest::proptest! {
        /// Well-formed CSV reads as the csv crate reads it.
        #[test]
        fn agrees_with_the_csv_crate(cells in proptest::collection::vec(
            proptest::collection::vec("[a-c ,\"\r\n]{0,4}", 2), 1..6)) {
            let mut w = csv::Writer::from_writer(Vec::new());
            for row in &cells {
                w.write_record(row).unwrap();
            }
            let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
            let mut theirs = Vec::new();
            let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
            for r in rdr.records() {
                theirs.push(Ok(r.unwrap().iter().map(str::to_owned).collect::<Vec<_>>()));
            }
            proptest::prop_assert_eq!(rows(&text, Some(2)), theirs);
        }
    }
}
