//! The report page: what it shows, as values ready to print, rendered by the `askama` template
//! `templates/report.html`. The template escapes every value; only the charts' SVG, which we
//! draw ourselves from numbers, goes in unescaped.

use askama::Template;

/// The whole page.
#[derive(Template)]
#[template(path = "report.html")]
pub(crate) struct Page {
    pub campaign: String,
    pub generated_at: String,
    pub version: &'static str,
    /// Label and value: API, gateway host, app key, state file, rows.
    pub facts: Vec<(&'static str, String)>,
    pub files: Vec<FileFact>,
    pub runs: Vec<RunRow>,
    pub counts: Vec<CountRow>,
    pub rows: u64,
    pub charts: Vec<RunCharts>,
    /// Said above the charts, e.g. which runs are not charted.
    pub charts_note: Option<String>,
    pub outcomes: Vec<OutcomeRow>,
    pub uncertain: Uncertain,
    pub budget: Option<Budget>,
    pub verdict: Verdict,
}

/// An input or results file and its MD5.
pub(crate) struct FileFact {
    pub role: &'static str,
    pub path: String,
    /// The file's MD5 now, or why there is none.
    pub md5: String,
    /// What the ledger recorded, when it differs or is worth saying.
    pub note: Option<String>,
}

/// One run in the runs table.
pub(crate) struct RunRow {
    pub id: i64,
    pub started_at: String,
    pub ended_at: String,
    pub duration: String,
    pub ending: String,
    /// `ok` / `warn` / `bad`: the colour of the ending.
    pub tone: &'static str,
    pub exit: String,
    pub sent: u64,
    pub issued: u64,
    pub failed: u64,
    pub uncertain: u64,
    pub retries: u64,
    pub throttle_events: u64,
    pub rate: String,
}

/// Rows with one status.
pub(crate) struct CountRow {
    pub status: &'static str,
    pub count: u64,
    /// Share of all rows, e.g. `12.5%`.
    pub share: String,
}

/// The two charts of one run.
pub(crate) struct RunCharts {
    pub id: i64,
    /// e.g. `5 s bins; 3 throttled stretches`.
    pub caption: String,
    /// Inline SVG drawn by [`super::chart`].
    pub rate_svg: String,
    pub latency_svg: String,
}

/// Attempts with one class, code and sub-code.
pub(crate) struct OutcomeRow {
    pub class: String,
    pub code: String,
    pub sub_code: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub example: String,
}

/// The `uncertain` rows, the first of them listed.
pub(crate) struct Uncertain {
    pub total: u64,
    pub rows: Vec<UncertainRow>,
    /// What to do about them, paragraph by paragraph.
    pub how_to_check: Vec<String>,
}

/// One `uncertain` row.
pub(crate) struct UncertainRow {
    pub row: i64,
    pub recipient: String,
    pub attempts: u64,
    pub error: String,
    pub message: String,
    pub top_request_id: String,
    pub finished_at: String,
}

/// Budget used, when one is set.
pub(crate) struct Budget {
    pub limit: u64,
    /// Issued plus uncertain plus in flight: what could have been issued.
    pub used: u64,
    pub left: u64,
    pub share: String,
}

/// `verify`'s verdict when the page was written.
pub(crate) struct Verdict {
    pub ok: bool,
    pub headline: String,
    pub discrepancies: Vec<String>,
    /// Discrepancies not listed.
    pub hidden: u64,
    pub notes: Vec<String>,
}
