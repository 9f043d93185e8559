//! What a run did and what the next one would do, in words for people: a run's counts and why a
//! Skipped run had nothing to send ([`Connector::explain_run`](crate::Connector::explain_run)),
//! and the preview of an export's next run
//! ([`Connector::preview`](crate::Connector::preview)).

use ferry_core::run::RunStatus;
use ferry_store::ExportMessage;
use serde_json::Value;

/// A finished run as its details page tells it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunExplanation {
    /// Contacts (or rows) created in the destination; `None` when the kind does not count them.
    pub created: Option<i64>,
    /// Contacts updated in the destination.
    pub updated: Option<i64>,
    /// Contacts or rows left out for a reason logged in the Sync Log or the detail.
    pub skipped: Option<i64>,
    /// Contacts the instance's filters (or the test-user rule) left out.
    pub filtered: Option<i64>,
    /// Contacts that failed (each has a Sync Log row).
    pub failed: Option<i64>,
    /// The file the run wrote, if it wrote one.
    pub file: Option<String>,
    /// Why a Skipped run had nothing to send, e.g. that every contact was filtered out, and by
    /// which filter.
    pub skipped_because: Option<String>,
}

/// One metric of a synchronization report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// The metric's name in the CSV and the API: `pulled`, `skipped:everyaction_not_us`…
    pub metric: String,
    /// What people read: `Pulled from EveryAction`, `Skipped: everyaction_not_us`…
    pub label: String,
    /// The count.
    pub value: i64,
    /// Whether the row is one reason of the `skipped` row above it.
    pub is_reason: bool,
}

/// A run's synchronization report: metrics in a fixed order, the skipped reasons one row each
/// after the `skipped` total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The rows, in the order they are shown and downloaded.
    pub rows: Vec<ReportRow>,
    /// The report in one line, for Recent Runs (see [`SyncReport::summarize`]).
    pub summary: String,
}

impl SyncReport {
    /// Adds a metric.
    pub fn push(&mut self, metric: &str, label: &str, value: i64) {
        self.rows.push(ReportRow {
            metric: metric.to_string(),
            label: label.to_string(),
            value,
            is_reason: false,
        });
    }

    /// Adds the `skipped` total and a row per reason (`skipped:<reason>`), reasons by name.
    pub fn push_skipped(&mut self, label: &str, reasons: &std::collections::BTreeMap<String, i64>) {
        self.push("skipped", label, reasons.values().sum());
        for (reason, n) in reasons {
            self.rows.push(ReportRow {
                metric: format!("skipped:{reason}"),
                label: format!("Skipped: {reason}"),
                value: *n,
                is_reason: true,
            });
        }
    }

    /// The value of `metric`, if the report has it.
    pub fn get(&self, metric: &str) -> Option<i64> {
        self.rows
            .iter()
            .find(|r| r.metric == metric)
            .map(|r| r.value)
    }

    /// The report as CSV: a `metric,value` header, then one row per metric.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("metric,value\r\n");
        for r in &self.rows {
            // Metric names are ASCII words, `:` and `_` (reasons are error codes), never quoted.
            out.push_str(&format!("{},{}\r\n", r.metric, r.value));
        }
        out
    }

    /// One line for Recent Runs: the main metrics that are not zero (skipped and errors even
    /// when zero are left out), e.g. `Pulled 120 · Created 5 · Opt-outs pushed 1`.
    pub fn summarize(&self, metrics: &[(&str, &str)]) -> String {
        let parts: Vec<String> = metrics
            .iter()
            .filter_map(|(m, label)| {
                self.get(m)
                    .filter(|v| *v != 0)
                    .map(|v| format!("{label} {v}"))
            })
            .collect();
        if parts.is_empty() {
            "Nothing to sync".to_string()
        } else {
            parts.join(" · ")
        }
    }
}

/// The number at `key` in `detail` and in its objects one level down (e.g. `push` and `pull`),
/// added up; a map of reasons to numbers counts as their sum. `None` when no value is there.
pub fn detail_count(detail: &Value, key: &str) -> Option<i64> {
    fn count(v: &Value) -> Option<i64> {
        match v {
            Value::Number(n) => n.as_i64(),
            Value::Object(m) => Some(m.values().filter_map(Value::as_i64).sum()),
            _ => None,
        }
    }
    let mut found = None;
    let mut add = |v: Option<i64>| {
        if let Some(n) = v {
            found = Some(found.unwrap_or(0) + n);
        }
    };
    add(detail.get(key).and_then(count));
    if let Some(m) = detail.as_object() {
        for v in m.values().filter(|v| v.is_object()) {
            add(v.get(key).and_then(count));
        }
    }
    found
}

/// The instance's contact filters (`config.filters`, a list of `{field, values}`) in words, e.g.
/// `Class Year is 2027 or 2028`; `None` when it has none.
pub fn describe_contact_filters(config: &Value) -> Option<String> {
    let list = config.get("filters")?.as_array()?;
    let parts: Vec<String> = list
        .iter()
        .filter_map(|f| {
            let field = f.get("field")?.as_str()?;
            let values: Vec<&str> = f
                .get("values")?
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            Some(format!("{field} is {}", values.join(" or ")))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; and "))
}

/// The explanation every kind gets unless it says more: the counts its detail records under
/// the usual names, the file it names, and for a Skipped run whether the filters left every
/// contact out (naming them) or nothing was new.
pub fn default_explanation(config: &Value, status: RunStatus, detail: &Value) -> RunExplanation {
    let mut e = RunExplanation {
        created: detail_count(detail, "created"),
        updated: detail_count(detail, "updated"),
        skipped: detail_count(detail, "skipped"),
        filtered: detail_count(detail, "filtered"),
        failed: detail_count(detail, "failed"),
        file: detail
            .get("file")
            .and_then(Value::as_str)
            .map(str::to_string),
        skipped_because: None,
    };
    if status == RunStatus::Skipped {
        let filtered = e.filtered.unwrap_or(0);
        e.skipped_because = Some(if filtered > 0 {
            let which = describe_contact_filters(config)
                .map(|f| format!(" (the filter: {f}; test users never sync)"))
                .unwrap_or_else(|| " (test users never sync)".to_string());
            format!(
                "Every contact it considered was filtered out: {filtered} left out by the instance's filters{which}."
            )
        } else {
            "Nothing new: nothing changed since the last run, so there was nothing to send."
                .to_string()
        });
    }
    e
}

/// What the next run of an export would send, worked out without sending anything or moving
/// its watermark.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPreview {
    /// One sentence on what the next run would do.
    pub summary: String,
    /// How many messages it would send (or contacts, for an export of contacts).
    pub total: i64,
    /// The first messages it would send, in file order (at most the rows asked for).
    pub messages: Vec<ExportMessage>,
    /// Rows the file would hold, the first row (header) aside.
    pub file_rows: u64,
    /// How the file would be named (its time stamp is taken when the run starts).
    pub file_name: Option<String>,
    /// The start of the file exactly as it would be written: the header row and the first rows.
    /// Empty when the run would write no file (it would be Skipped).
    pub head: Vec<u8>,
    /// Data rows in `head`.
    pub head_rows: u64,
    /// Contacts whose messages would be left out, with the Sync Log code the run would log.
    pub left_out: Vec<(i64, &'static str)>,
}

impl RunPreview {
    /// Whether `head` is the whole file.
    pub fn complete(&self) -> bool {
        self.head_rows == self.file_rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_add_up_across_nested_details() {
        let d = json!({"push": {"created": 2, "failed": 1}, "pull": {"created": 3, "skipped": {"no_phone": 4, "outside_us": 1}}});
        assert_eq!(detail_count(&d, "created"), Some(5));
        assert_eq!(detail_count(&d, "skipped"), Some(5));
        assert_eq!(detail_count(&d, "failed"), Some(1));
        assert_eq!(detail_count(&d, "updated"), None);
    }

    #[test]
    fn a_report_downloads_as_metric_value_rows() {
        let mut r = SyncReport::default();
        r.push("pulled", "Pulled", 7);
        let reasons = [("b_reason".to_string(), 2), ("a_reason".to_string(), 1)]
            .into_iter()
            .collect();
        r.push_skipped("Skipped", &reasons);
        r.push("errors", "Errors", 0);
        assert_eq!(
            r.to_csv(),
            "metric,value\r\npulled,7\r\nskipped,3\r\nskipped:a_reason,1\r\nskipped:b_reason,2\r\nerrors,0\r\n"
        );
        assert_eq!(r.get("skipped"), Some(3));
        assert_eq!(
            r.summarize(&[
                ("pulled", "Pulled"),
                ("errors", "Errors"),
                ("skipped", "Skipped")
            ]),
            "Pulled 7 · Skipped 3"
        );
        assert_eq!(
            SyncReport::default().summarize(&[("pulled", "Pulled")]),
            "Nothing to sync"
        );
    }

    #[test]
    fn a_skipped_run_says_why() {
        let config = json!({"filters": [{"field": "class_year", "values": ["2027", "2028"]}]});
        let e = default_explanation(
            &config,
            RunStatus::Skipped,
            &json!({"filtered": 7, "created": 0}),
        );
        let why = e.skipped_because.unwrap();
        assert!(why.contains("7 left out"), "{why}");
        assert!(why.contains("class_year is 2027 or 2028"), "{why}");
        let e = default_explanation(&config, RunStatus::Skipped, &json!({"filtered": 0}));
        assert!(e.skipped_because.unwrap().starts_with("Nothing new"));
        let e = default_explanation(&config, RunStatus::Success, &json!({"created": 1}));
        assert_eq!(e.skipped_because, None);
        assert_eq!(e.created, Some(1));
    }
}
