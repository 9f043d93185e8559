//! `ferry import contacts`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ferry_store::{ImportError, ImportReport};
use indicatif::{ProgressBar, ProgressStyle};

use super::institution;
use crate::settings::Settings;

/// How many row errors are printed; the report counts them all.
const SHOWN_ERRORS: usize = 20;

/// An import that skipped rows, when that was not allowed: the command exits with
/// [`RowsSkipped::STATUS`], so that a script can tell it from a refused file (status 1).
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} row(s) were skipped (listed above); pass --allow-skipped to exit with status 0 anyway"
)]
pub struct RowsSkipped(pub u64);

impl RowsSkipped {
    pub const STATUS: u8 = 3;
}

pub async fn contacts(
    settings: &Settings,
    file: &Path,
    slug: &str,
    allow_skipped: bool,
) -> Result<()> {
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = settings.connect_and_migrate().await?;
    let inst = institution(&store, slug).await?;
    let bar = progress_bar(estimate_rows(&data));
    let started = std::time::Instant::now();
    let result = store
        .import_contacts_csv(inst.id, data, {
            let bar = bar.clone();
            move |done| {
                if done > bar.length().unwrap_or(0) {
                    bar.set_length(done);
                }
                bar.set_position(done);
            }
        })
        .await;
    bar.finish_and_clear();
    store.close().await;
    let report = match result {
        Ok(r) => r,
        Err(ImportError::File { code, message }) => {
            bail!(
                "{} was refused and nothing was imported ({code}): {message}",
                file.display()
            )
        }
        Err(ImportError::Store(e)) => return Err(e).context("the import failed"),
    };
    print_report(&report, file, &inst.name, &inst.slug, started.elapsed());
    if report.skipped > 0 && !allow_skipped {
        return Err(RowsSkipped(report.skipped).into());
    }
    Ok(())
}

/// The data rows, by counting line ends (quoted line breaks make it an over-estimate).
fn estimate_rows(data: &[u8]) -> u64 {
    let lines = data.iter().filter(|b| **b == b'\n').count() as u64;
    let last_unterminated = u64::from(!data.is_empty() && !data.ends_with(b"\n"));
    (lines + last_unterminated).saturating_sub(1)
}

/// A progress bar on stderr; indicatif draws nothing when stderr is not a terminal.
pub fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
        )
        .expect("the template is valid"),
    );
    bar
}

fn print_report(r: &ImportReport, file: &Path, name: &str, slug: &str, took: std::time::Duration) {
    let rows = r.created + r.updated + r.unchanged + r.skipped;
    println!(
        "imported {} into {name} ({slug}): {rows} rows in {:.1} s",
        file.display(),
        took.as_secs_f64()
    );
    println!("  created:   {}", r.created);
    println!("  updated:   {}", r.updated);
    println!("  unchanged: {}", r.unchanged);
    println!("  skipped:   {}", r.skipped);
    if r.errors.is_empty() {
        return;
    }
    let shown = r.errors.len().min(SHOWN_ERRORS);
    println!(
        "rows not imported{}:",
        if r.skipped as usize > shown {
            format!(" (first {shown} of {})", r.skipped)
        } else {
            String::new()
        }
    );
    for e in &r.errors[..shown] {
        println!("  row {}: {} [{}]", e.row, e.message, e.code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_estimate() {
        assert_eq!(estimate_rows(b""), 0);
        assert_eq!(estimate_rows(b"a,b\n"), 0);
        assert_eq!(estimate_rows(b"a,b\n1,2\n3,4"), 2);
        assert_eq!(estimate_rows(b"a,b\n1,2\n3,4\n"), 2);
    }
}
