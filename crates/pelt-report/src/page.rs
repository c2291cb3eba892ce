//! A suite's page, `results/<suite>/README.md`: a generated part (caption, table, plots, links to the
//! diagnostics and selection pages) rewritten by every `pelt table` / `pelt plot`, and a hand-written
//! reading below a marker line that regeneration keeps as it is.

use anyhow::{Context, Result};
use pelt_records::write_atomic;
use std::path::{Path, PathBuf};

/// The line that separates the generated part from the hand-written reading.
pub const READING_MARKER: &str =
    "<!-- reading: written by hand below this line; `pelt table` and `pelt plot` keep it -->";

/// What the generated part of a page shows.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    /// Suite name (the page's title).
    pub name: &'a str,
    /// The table in Markdown, caption included.
    pub table: &'a str,
}

/// The plots of a suite that exist, as (title, file name under `plots/`), in reading order.
fn plots(suite_dir: &Path) -> Vec<(&'static str, &'static str)> {
    [
        ("Test score against training-set size", "score_vs_size.png"),
        ("Test score against % trainable parameters", "score_vs_params.png"),
        ("Dev score against training step", "dev_curves.png"),
        ("Dev score against cumulative communication (federated runs)", "score_vs_communication.png"),
    ]
    .into_iter()
    .filter(|(_, f)| suite_dir.join("plots").join(f).is_file())
    .collect()
}

/// Rewrites the generated part of `suite_dir/README.md`, keeping whatever follows [`READING_MARKER`]
/// in the page already there (or starting an empty reading); returns the page's path.
pub fn write(suite_dir: &Path, page: &Page) -> Result<PathBuf> {
    let path = suite_dir.join("README.md");
    let old = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    let reading = match old.split_once(READING_MARKER) {
        Some((_, kept)) => kept.trim_start_matches('\n').to_owned(),
        None => "## Reading\n\nNo reading written yet.\n".to_owned(),
    };
    let mut out = format!(
        "<!-- generated from records/ by `pelt table` and `pelt plot`; edits above the reading marker are \
         overwritten -->\n# Suite `{}`\n\n{}\n",
        page.name,
        page.table.trim_end()
    );
    let shown = plots(suite_dir);
    if !shown.is_empty() {
        out.push_str("\n## Plots\n");
        for (title, file) in shown {
            out.push_str(&format!("\n{title} (SVG beside it in `plots/`):\n\n![{title}](plots/{file})\n"));
        }
    }
    let pages: Vec<String> =
        ["metrics.md", "diagnostics.md", "selection.md", "communication.md", "pairs.md", "budget.md", "cost.md"]
            .iter()
            .filter(|f| suite_dir.join(f).is_file())
            .map(|f| format!("[{f}]({f})"))
            .collect();
    out.push_str(&format!(
        "\nGenerated beside this page: [table.md](table.md), [table.csv](table.csv), [table.tex](table.tex){}; every \
         run's record in `records/`.\n\n{READING_MARKER}\n\n{reading}",
        pages.iter().map(|p| format!(", {p}")).collect::<String>()
    ));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    write_atomic(&path, out.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regeneration_keeps_the_hand_written_reading() {
        let dir = tempfile::tempdir().unwrap();
        let page = Page { name: "s", table: "| method |\n|---|\n| lora |\n\nCaption.\n" };
        let path = write(dir.path(), &page).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(
            first.contains("# Suite `s`") && first.contains("| lora |") && first.contains("No reading written yet.")
        );
        assert!(!first.contains("## Plots"), "no plots drawn yet");
        let edited = first.replace("No reading written yet.", "LoRA wins, by 2 points over 5 seeds.\n\nMore.");
        std::fs::write(&path, edited).unwrap();
        std::fs::create_dir_all(dir.path().join("plots")).unwrap();
        std::fs::write(dir.path().join("plots/score_vs_size.png"), b"png").unwrap();
        let page = Page { name: "s", table: "| method |\n|---|\n| houlsby |\n" };
        write(dir.path(), &page).unwrap();
        let second = std::fs::read_to_string(&path).unwrap();
        assert!(second.contains("| houlsby |") && !second.contains("| lora |"), "{second}");
        assert!(second.contains("![Test score against training-set size](plots/score_vs_size.png)"), "{second}");
        assert!(
            second.ends_with(&format!(
                "{READING_MARKER}\n\n## Reading\n\nLoRA wins, by 2 points over 5 seeds.\n\nMore.\n"
            )),
            "{second}"
        );
        assert_eq!(second.matches(READING_MARKER).count(), 1);
    }
}
