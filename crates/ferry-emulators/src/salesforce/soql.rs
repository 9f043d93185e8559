//! A subset of SOQL: `SELECT f, … FROM Object [WHERE …] [ORDER BY f [ASC|DESC] [NULLS
//! FIRST|LAST], …] [LIMIT n]`, with `AND`, `OR`, `NOT`, parentheses, `=`, `!=`, `<>`, `<`, `>`,
//! `<=`, `>=`, `IN`, `NOT IN`, `LIKE` and `NULL`. Anything else is `MALFORMED_QUERY`, as
//! Salesforce answers what it cannot parse. As in SOQL: mixing `AND` and `OR` without
//! parentheses is refused; string comparisons ignore case; `!=` matches null values; datetime
//! and date fields take unquoted literals, text fields quoted ones (`INVALID_FIELD` otherwise).

use std::cmp::Ordering;

use serde_json::Value;

use super::describe::{Field, FieldType};
use super::store::Record;
use super::time;

/// A query error: Salesforce's code and message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueryError {
    pub code: &'static str,
    pub message: String,
}

fn malformed(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "MALFORMED_QUERY",
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Lit(String),
    Punct(&'static str),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, QueryError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(malformed("unexpected end of query: unterminated string")),
                    Some('\\') => {
                        let e = chars.get(i + 1).copied().unwrap_or('\\');
                        v.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        v.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while chars
                .get(i)
                .is_some_and(|ch| ch.is_ascii_alphanumeric() || matches!(ch, ':' | '.' | '+' | '-'))
            {
                i += 1;
            }
            out.push(Tok::Lit(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|ch| ch.is_alphanumeric() || matches!(ch, '_' | '.'))
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let p = match two.as_str() {
                "!=" => Some("!="),
                "<>" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(p) = p {
                out.push(Tok::Punct(p));
                i += 2;
                continue;
            }
            let p = match c {
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                _ => return Err(malformed(format!("unexpected token: '{c}'"))),
            };
            out.push(Tok::Punct(p));
            i += 1;
        }
    }
    Ok(out)
}

/// A literal of a filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Text(String),
    /// Epoch milliseconds.
    DateTime(i64),
    Date(String),
    Number(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Like,
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(&'static str, FieldType, Op, Literal),
    In(&'static str, FieldType, bool, Vec<Literal>),
}

/// One `ORDER BY` item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Order {
    pub field: &'static str,
    pub ty: FieldType,
    pub desc: bool,
    pub nulls_first: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub object: &'static str,
    pub fields: Vec<&'static str>,
    pub filter: Option<Expr>,
    pub order: Vec<Order>,
    pub limit: Option<usize>,
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    object: &'static str,
    fields: &'a [Field],
}

fn kw(t: Option<&Tok>, word: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
}

fn describe_tok(t: Option<&Tok>) -> String {
    match t {
        None => "unexpected end of query".into(),
        Some(Tok::Word(w)) | Some(Tok::Lit(w)) => format!("unexpected token: '{w}'"),
        Some(Tok::Str(s)) => format!("unexpected token: ''{s}''"),
        Some(Tok::Punct(p)) => format!("unexpected token: '{p}'"),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect_kw(&mut self, word: &str) -> Result<(), QueryError> {
        if kw(self.peek(), word) {
            self.pos += 1;
            Ok(())
        } else {
            Err(malformed(describe_tok(self.peek())))
        }
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(x)) if *x == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn field_name(&mut self) -> Result<(&'static str, FieldType), QueryError> {
        match self.next() {
            Some(Tok::Word(w)) => {
                let name = w
                    .strip_prefix(&format!("{}.", self.object))
                    .unwrap_or(&w)
                    .to_string();
                match self
                    .fields
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(&name))
                {
                    Some(f) => Ok((f.name, f.ty)),
                    None => Err(QueryError {
                        code: "INVALID_FIELD",
                        message: format!(
                            "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                            self.object
                        ),
                    }),
                }
            }
            other => Err(malformed(describe_tok(other.as_ref()))),
        }
    }

    fn literal(&mut self, field: &str, ty: FieldType) -> Result<Literal, QueryError> {
        let wrong = |what: &str| QueryError {
            code: "INVALID_FIELD",
            message: format!(
                "value of filter criterion for field '{field}' must be of type {what}"
            ),
        };
        let t = self.next();
        match (&t, ty) {
            (Some(Tok::Word(w)), _) if w.eq_ignore_ascii_case("null") => Ok(Literal::Null),
            (Some(Tok::Word(w)), FieldType::Boolean)
                if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") =>
            {
                Ok(Literal::Bool(w.eq_ignore_ascii_case("true")))
            }
            (Some(Tok::Lit(l)), FieldType::DateTime) => time::parse(l)
                .map(Literal::DateTime)
                .ok_or_else(|| malformed(format!("line 1:{}, value of filter criterion for field '{field}' must be of type dateTime and should not be enclosed in quotes", self.pos))),
            (Some(Tok::Str(_)), FieldType::DateTime) => {
                Err(wrong("dateTime and should not be enclosed in quotes"))
            }
            (Some(Tok::Lit(l)), FieldType::Date)
                if jiff::civil::Date::strptime("%Y-%m-%d", l).is_ok() =>
            {
                Ok(Literal::Date(l.clone()))
            }
            (Some(Tok::Str(_)), FieldType::Date) => {
                Err(wrong("date and should not be enclosed in quotes"))
            }
            (Some(Tok::Str(s)), t)
                if !matches!(t, FieldType::Boolean | FieldType::Date | FieldType::DateTime) =>
            {
                Ok(Literal::Text(s.clone()))
            }
            (Some(Tok::Lit(l)), FieldType::String) if l.parse::<f64>().is_ok() => {
                Err(wrong("string and should be enclosed in quotes"))
            }
            (Some(Tok::Lit(l)), _) if l.parse::<f64>().is_ok() && ty == FieldType::Boolean => {
                Err(wrong("boolean"))
            }
            (Some(Tok::Lit(l)), _) => match l.parse::<f64>() {
                Ok(n) => Ok(Literal::Number(n)),
                Err(_) => Err(malformed(describe_tok(t.as_ref()))),
            },
            _ => Err(malformed(describe_tok(t.as_ref()))),
        }
    }

    fn condition(&mut self) -> Result<Expr, QueryError> {
        let first = self.unary()?;
        let mut items = vec![first];
        let mut conj: Option<bool> = None;
        loop {
            let is_and = if kw(self.peek(), "and") {
                true
            } else if kw(self.peek(), "or") {
                false
            } else {
                break;
            };
            if conj.is_some_and(|c| c != is_and) {
                return Err(malformed(describe_tok(self.peek())));
            }
            conj = Some(is_and);
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(match conj {
            None => items.pop().unwrap_or(Expr::And(vec![])),
            Some(true) => Expr::And(items),
            Some(false) => Expr::Or(items),
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if kw(self.peek(), "not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat_punct("(") {
            let e = self.condition()?;
            if !self.eat_punct(")") {
                return Err(malformed(describe_tok(self.peek())));
            }
            return Ok(e);
        }
        let (field, ty) = self.field_name()?;
        let negated_in = kw(self.peek(), "not");
        if negated_in {
            self.pos += 1;
        }
        if kw(self.peek(), "in") {
            self.pos += 1;
            if !self.eat_punct("(") {
                return Err(malformed(describe_tok(self.peek())));
            }
            let mut list = Vec::new();
            loop {
                list.push(self.literal(field, ty)?);
                if self.eat_punct(")") {
                    break;
                }
                if !self.eat_punct(",") {
                    return Err(malformed(describe_tok(self.peek())));
                }
            }
            return Ok(Expr::In(field, ty, negated_in, list));
        }
        if negated_in {
            return Err(malformed(describe_tok(self.peek())));
        }
        let op = match self.next() {
            Some(Tok::Punct("=")) => Op::Eq,
            Some(Tok::Punct("!=")) => Op::Ne,
            Some(Tok::Punct("<")) => Op::Lt,
            Some(Tok::Punct(">")) => Op::Gt,
            Some(Tok::Punct("<=")) => Op::Le,
            Some(Tok::Punct(">=")) => Op::Ge,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("like") => Op::Like,
            other => return Err(malformed(describe_tok(other.as_ref()))),
        };
        let lit = self.literal(field, ty)?;
        if op == Op::Like && !matches!(lit, Literal::Text(_)) {
            return Err(QueryError {
                code: "INVALID_FIELD",
                message: format!("invalid operator on {field}: LIKE needs a string"),
            });
        }
        if lit == Literal::Null && !matches!(op, Op::Eq | Op::Ne) {
            return Err(malformed("unexpected token: 'null'"));
        }
        Ok(Expr::Cmp(field, ty, op, lit))
    }
}

/// Parses `soql` against the objects `fields_of` knows (`None`: `INVALID_TYPE`).
pub(crate) fn parse(
    soql: &str,
    fields_of: impl Fn(&str) -> Option<(&'static str, &'static [Field])>,
) -> Result<Query, QueryError> {
    let toks = tokenize(soql)?;
    let mut p = Parser {
        toks,
        pos: 0,
        object: "",
        fields: &[],
    };
    p.expect_kw("select")?;
    let select_start = p.pos;
    // Skip to FROM to learn the object first.
    let mut depth = 0;
    while let Some(t) = p.peek() {
        if depth == 0 && kw(Some(t), "from") {
            break;
        }
        match t {
            Tok::Punct("(") => depth += 1,
            Tok::Punct(")") => depth -= 1,
            _ => {}
        }
        p.pos += 1;
    }
    let select_end = p.pos;
    p.expect_kw("from")?;
    let object_name = match p.next() {
        Some(Tok::Word(w)) => w,
        other => return Err(malformed(describe_tok(other.as_ref()))),
    };
    let Some((object, fields)) = fields_of(&object_name) else {
        return Err(QueryError {
            code: "INVALID_TYPE",
            message: format!(
                "sObject type '{object_name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        });
    };
    p.object = object;
    p.fields = fields;
    let after_from = p.pos;
    p.pos = select_start;
    let mut selected = Vec::new();
    if select_start == select_end {
        return Err(malformed("unexpected token: 'FROM'"));
    }
    while p.pos < select_end {
        if matches!(p.toks.get(p.pos + 1), Some(Tok::Punct("("))) {
            return Err(malformed(describe_tok(p.peek())));
        }
        let (f, _) = p.field_name()?;
        if !selected.contains(&f) {
            selected.push(f);
        }
        if p.pos < select_end && !p.eat_punct(",") {
            return Err(malformed(describe_tok(p.peek())));
        }
    }
    p.pos = after_from;
    let filter = if kw(p.peek(), "where") {
        p.pos += 1;
        Some(p.condition()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if kw(p.peek(), "order") {
        p.pos += 1;
        p.expect_kw("by")?;
        loop {
            let (field, ty) = p.field_name()?;
            let mut desc = false;
            if kw(p.peek(), "asc") {
                p.pos += 1;
            } else if kw(p.peek(), "desc") {
                p.pos += 1;
                desc = true;
            }
            let mut nulls_first = !desc;
            if kw(p.peek(), "nulls") {
                p.pos += 1;
                if kw(p.peek(), "first") {
                    nulls_first = true;
                } else if kw(p.peek(), "last") {
                    nulls_first = false;
                } else {
                    return Err(malformed(describe_tok(p.peek())));
                }
                p.pos += 1;
            }
            order.push(Order {
                field,
                ty,
                desc,
                nulls_first,
            });
            if !p.eat_punct(",") {
                break;
            }
        }
    }
    let mut limit = None;
    if kw(p.peek(), "limit") {
        p.pos += 1;
        match p.next() {
            Some(Tok::Lit(n)) if n.parse::<usize>().is_ok() => limit = n.parse().ok(),
            other => return Err(malformed(describe_tok(other.as_ref()))),
        }
    }
    if p.peek().is_some() {
        return Err(malformed(describe_tok(p.peek())));
    }
    Ok(Query {
        object,
        fields: selected,
        filter,
        order,
        limit,
    })
}

/// Compares a record's value with a literal; `None` when either is null or they do not
/// compare.
fn compare(value: &Value, ty: FieldType, lit: &Literal) -> Option<Ordering> {
    match (value, lit) {
        (Value::Null, _) | (_, Literal::Null) => None,
        (Value::Bool(b), Literal::Bool(l)) => Some(b.cmp(l)),
        (Value::String(s), Literal::DateTime(ms)) if ty == FieldType::DateTime => {
            time::parse(s).map(|v| v.cmp(ms))
        }
        (Value::String(s), Literal::Date(d)) => Some(s.as_str().cmp(d.as_str())),
        // Ids are case-sensitive; a 15-character literal stands for its 18-character form.
        (Value::String(s), Literal::Text(t))
            if matches!(ty, FieldType::Id | FieldType::Reference) =>
        {
            let t = if super::store::valid_id(t) {
                super::store::id18(t)
            } else {
                t.clone()
            };
            Some(s.as_str().cmp(t.as_str()))
        }
        (Value::String(s), Literal::Text(t)) => Some(s.to_lowercase().cmp(&t.to_lowercase())),
        (Value::String(s), Literal::Number(n)) => s.parse::<f64>().ok()?.partial_cmp(n),
        (Value::Number(v), Literal::Number(n)) => v.as_f64()?.partial_cmp(n),
        _ => None,
    }
}

fn like(value: &str, pattern: &str) -> bool {
    fn rec(v: &[char], p: &[char]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some('%') => (0..=v.len()).any(|i| rec(&v[i..], &p[1..])),
            Some('_') => !v.is_empty() && rec(&v[1..], &p[1..]),
            Some('\\') if p.len() > 1 => v.first() == Some(&p[1]) && rec(&v[1..], &p[2..]),
            Some(c) => v.first() == Some(c) && rec(&v[1..], &p[1..]),
        }
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    rec(&v, &p)
}

impl Expr {
    /// Whether `record` matches.
    pub fn matches(&self, record: &Record) -> bool {
        match self {
            Expr::And(items) => items.iter().all(|e| e.matches(record)),
            Expr::Or(items) => items.iter().any(|e| e.matches(record)),
            Expr::Not(e) => !e.matches(record),
            Expr::In(field, ty, negated, list) => {
                let v = record.get(field);
                let hit = list.iter().any(|l| {
                    compare(&v, *ty, l) == Some(Ordering::Equal)
                        || (v.is_null() && *l == Literal::Null)
                });
                hit != *negated
            }
            Expr::Cmp(field, ty, op, lit) => {
                let v = record.get(field);
                if *lit == Literal::Null {
                    return (*op == Op::Eq) == v.is_null();
                }
                if *op == Op::Like {
                    return match (&v, lit) {
                        (Value::String(s), Literal::Text(p)) => like(s, p),
                        _ => false,
                    };
                }
                let c = compare(&v, *ty, lit);
                match op {
                    Op::Eq => c == Some(Ordering::Equal),
                    Op::Ne => c != Some(Ordering::Equal),
                    Op::Lt => c == Some(Ordering::Less),
                    Op::Gt => c == Some(Ordering::Greater),
                    Op::Le => matches!(c, Some(Ordering::Less | Ordering::Equal)),
                    Op::Ge => matches!(c, Some(Ordering::Greater | Ordering::Equal)),
                    Op::Like => false,
                }
            }
        }
    }
}

fn order_key(v: &Value, ty: FieldType) -> Option<(i64, String)> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some((i64::from(*b), String::new())),
        Value::String(s) if ty == FieldType::DateTime => {
            Some((time::parse(s).unwrap_or(0), String::new()))
        }
        Value::String(s) if matches!(ty, FieldType::Id | FieldType::Reference) => {
            Some((0, s.clone()))
        }
        Value::String(s) => Some((0, s.to_lowercase())),
        other => Some((0, other.to_string())),
    }
}

impl Query {
    /// Sorts matching records as `ORDER BY` says (stable: ties keep id order).
    pub fn sort(&self, records: &mut [&Record]) {
        if self.order.is_empty() {
            return;
        }
        records.sort_by(|a, b| {
            for o in &self.order {
                let ka = order_key(&a.get(o.field), o.ty);
                let kb = order_key(&b.get(o.field), o.ty);
                let c = match (&ka, &kb) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => {
                        if o.nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (Some(_), None) => {
                        if o.nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (Some(x), Some(y)) => {
                        if o.desc {
                            y.cmp(x)
                        } else {
                            x.cmp(y)
                        }
                    }
                };
                if c != Ordering::Equal {
                    return c;
                }
            }
            Ordering::Equal
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::describe;
    use super::*;

    fn contact_fields() -> &'static [Field] {
        static F: std::sync::OnceLock<Vec<Field>> = std::sync::OnceLock::new();
        F.get_or_init(|| describe::fields("Contact").unwrap())
    }

    fn q(s: &str) -> Result<Query, QueryError> {
        parse(s, |o| {
            o.eq_ignore_ascii_case("contact")
                .then_some(("Contact", contact_fields()))
        })
    }

    #[test]
    fn parses_the_subset() {
        let query = q("select id, Email FROM Contact WHERE (Email LIKE '%@x.edu' OR Phone = null) AND SystemModstamp >= 2024-01-02T03:04:05Z AND LastName IN ('A','B') ORDER BY SystemModstamp, Id DESC NULLS LAST LIMIT 10").unwrap();
        assert_eq!(query.fields, vec!["Id", "Email"]);
        assert_eq!(query.limit, Some(10));
        assert_eq!(query.order.len(), 2);
        assert!(query.order[1].desc && !query.order[1].nulls_first);
    }

    #[test]
    fn refuses_what_soql_refuses() {
        for (s, code) in [
            (
                "SELECT Id FROM Contact WHERE A = 1 AND B = 2 OR C = 3",
                "INVALID_FIELD",
            ),
            (
                "SELECT Id FROM Contact WHERE Email = 'a' AND LastName = 'b' OR Phone = 'c'",
                "MALFORMED_QUERY",
            ),
            ("SELECT COUNT() FROM Contact", "MALFORMED_QUERY"),
            ("SELECT Id FROM Contact GROUP BY Email", "MALFORMED_QUERY"),
            ("SELECT Id FROM Nope", "INVALID_TYPE"),
            ("SELECT Nope__c FROM Contact", "INVALID_FIELD"),
            (
                "SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-01T00:00:00Z'",
                "INVALID_FIELD",
            ),
            (
                "SELECT Id FROM Contact WHERE LastName = 'x",
                "MALFORMED_QUERY",
            ),
            ("SELECT FROM Contact", "MALFORMED_QUERY"),
            ("DELETE FROM Contact", "MALFORMED_QUERY"),
            ("SELECT Id FROM Contact LIMIT x", "MALFORMED_QUERY"),
        ] {
            assert_eq!(q(s).unwrap_err().code, code, "{s}");
        }
    }

    #[test]
    fn like_is_case_insensitive_with_wildcards() {
        assert!(like("Ana@State.EDU", "%@state.edu"));
        assert!(like("abc", "a_c"));
        assert!(!like("abcd", "a_c"));
        assert!(like("50%", "50\\%"));
    }
}
