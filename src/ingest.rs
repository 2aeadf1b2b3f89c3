//! Bringing the input file into the ledger: above both [`crate::input`] (reading and preparing
//! rows) and [`crate::ledger`] (storing them), so that the ledger knows neither the campaign
//! nor the CSV.
//!
//! Ingest streams the input once, validates each row, and stores one `entries` row per
//! identity; a second row with the same identity is a duplicate. When neither the input file
//! nor the campaign params changed since the last complete ingest, it is skipped: resuming costs
//! a few meta reads. When they did change, rows are re-read, but an identity that was already
//! sent keeps its state, so nothing is issued twice because of it.

use crate::batches;
use crate::campaign::Campaign;
use crate::input::{self, Header, InputError, InputReader, Prepared};
use crate::ledger::generation::{GenerationCounts, InputRecord, NewGeneration};
use crate::ledger::{Ledger, LedgerError, Request};

/// How many invalid rows an ingest report quotes.
const INVALID_EXAMPLES: usize = 10;

/// What the ingest is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A run: the rows are stored for good, and only what changed is reported (counting rows
    /// would cost a pass over the ledger that resuming must not pay).
    Run,
    /// A dry run: the rows are counted, and everything stored is rolled back.
    Plan,
}

/// What ingest found. The counts are filled in for dry runs only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IngestReport {
    /// Data rows in the input.
    pub(crate) rows: u64,
    pub(crate) invalid: u64,
    pub(crate) duplicates: u64,
    /// Rows whose identity still has to be sent.
    pub(crate) to_send: u64,
    /// Rows whose identity already reached a final state in an earlier run.
    pub(crate) already_done: u64,
    /// The input and params were unchanged since the last ingest, which was reused.
    pub(crate) reused: bool,
    pub(crate) input_changed: bool,
    pub(crate) params_changed: bool,
    /// Identities recorded earlier that are no longer in the input (kept, never sent).
    pub(crate) orphaned: u64,
    /// The first few invalid rows, as `row N (line L): reason`, when this ingest read the file.
    pub(crate) invalid_examples: Vec<String>,
}

impl IngestReport {
    fn counted(counts: GenerationCounts) -> IngestReport {
        let GenerationCounts {
            rows,
            invalid,
            duplicates,
            to_send,
            already_done,
            orphaned,
        } = counts;
        IngestReport {
            rows,
            invalid,
            duplicates,
            to_send,
            already_done,
            orphaned,
            ..IngestReport::default()
        }
    }
}

/// Ingest failures.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IngestError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "{path}: no `{field}` column, and no default for it in [params] of the campaign file: \
         every row would be invalid"
    )]
    MissingParam {
        path: std::path::PathBuf,
        field: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Brings the campaign's input into the ledger (or reuses the last ingest when nothing changed).
pub(crate) fn ingest(
    ledger: &mut Ledger,
    campaign: &Campaign,
    purpose: Purpose,
) -> Result<IngestReport, IngestError> {
    let io = |source| IngestError::Io {
        path: campaign.input.clone(),
        source,
    };
    let stat = input::quick_stat(&campaign.input).map_err(io)?;
    let params_fingerprint = campaign.params_fingerprint();
    let last = ledger.last_ingest()?;
    let params_changed = last
        .params_fingerprint
        .as_ref()
        .is_some_and(|p| *p != params_fingerprint);
    // Same size, modification time and file as the last complete ingest: resuming costs no
    // pass over the input. (The results writer hashes it in full at the end of the run.)
    if last.complete && !params_changed && last.input_stat.as_deref() == Some(stat.as_str()) {
        return reused(ledger, purpose);
    }
    let fingerprint = input::fingerprint(&campaign.input).map_err(io)?;
    let input_changed = last
        .input_fingerprint
        .as_ref()
        .is_some_and(|p| *p != fingerprint);
    if last.complete && !input_changed && !params_changed {
        // Touched but not changed.
        if purpose == Purpose::Run {
            ledger.touch_input(&stat)?;
        }
        return reused(ledger, purpose);
    }

    let mut reader = campaign.open_input()?;
    check_required_params(campaign, reader.header())?;
    let mut generation = ledger.begin_generation(purpose == Purpose::Run)?;
    let mut examples = Vec::new();
    if let Err(e) = store_rows(campaign, &mut reader, &mut generation, &mut examples) {
        generation.rollback()?;
        return Err(e);
    }
    let report = match purpose {
        Purpose::Run => IngestReport::default(),
        Purpose::Plan => IngestReport::counted(generation.counts()?),
    };
    let path = campaign.input.display().to_string();
    generation.commit(&InputRecord {
        stat: &stat,
        fingerprint: &fingerprint,
        params_fingerprint: &params_fingerprint,
        path: &path,
    })?;
    Ok(IngestReport {
        input_changed,
        params_changed,
        invalid_examples: examples,
        ..report
    })
}

/// The report when the last ingest still holds.
fn reused(ledger: &Ledger, purpose: Purpose) -> Result<IngestReport, IngestError> {
    let counted = match purpose {
        Purpose::Plan => IngestReport::counted(ledger.counts(ledger.generation()?)?),
        Purpose::Run => {
            ledger.keep_shape()?;
            IngestReport::default()
        }
    };
    Ok(IngestReport {
        reused: true,
        ..counted
    })
}

/// One row read and prepared, ready to store.
struct ReadRow {
    row: u64,
    line: u64,
    prepared: Prepared,
}

/// Reads every row, prepares it, and stores it as valid or invalid.
///
/// Two threads, one per core: this one stores into the ledger while another reads, decodes,
/// validates and prepares the rows (building each request and its key), handed over in batches.
fn store_rows(
    campaign: &Campaign,
    reader: &mut InputReader,
    generation: &mut NewGeneration<'_>,
    examples: &mut Vec<String>,
) -> Result<(), IngestError> {
    let (rows, received) = batches::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || read_rows(campaign, reader, rows));
        // Dropping `received` on an error stops the reader at its next batch.
        for read in received.into_iter().flatten() {
            store_row(campaign, &read?, generation, examples)?;
        }
        Ok(())
    })
}

/// Reads and prepares the input's rows until the end, an error (handed over as the last
/// item), or the storing side stops listening.
fn read_rows(
    campaign: &Campaign,
    reader: &mut InputReader,
    mut rows: batches::Sender<Result<ReadRow, InputError>>,
) {
    let header = reader.header().clone();
    while let Some(next) = reader.next_row() {
        let read = next.map(|row| ReadRow {
            row: row.row,
            line: row.line,
            prepared: match row.problem {
                Some(reason) => Prepared::Invalid { reason },
                None => input::prepare(
                    &campaign.name,
                    campaign.api,
                    &header,
                    &campaign.params,
                    &row.record,
                ),
            },
        });
        let failed = read.is_err();
        if rows.push(read).is_err() || failed {
            break;
        }
    }
    // A storing side that stopped listening needs no more.
    let _ = rows.finish();
}

/// Stores one prepared row as valid or invalid.
fn store_row(
    campaign: &Campaign,
    read: &ReadRow,
    generation: &mut NewGeneration<'_>,
    examples: &mut Vec<String>,
) -> Result<(), IngestError> {
    // Two rows that send the same request are duplicates however their cells are spelled; a
    // generated request id is left out of the comparison. (The key of a row's own request comes
    // with it; this one gives the key of a request sent before, as the ledger kept it.)
    let key_of = |identity: &str, payload: &str, sent_request_id: Option<&str>| {
        let generated = sent_request_id
            .is_some_and(|rid| rid == input::request_id_for(&campaign.name, identity));
        input::request_key(campaign.api, payload, generated)
    };
    let (row, line) = (read.row, read.line);
    match &read.prepared {
        Prepared::Invalid { reason } => {
            if examples.len() < INVALID_EXAMPLES {
                examples.push(format!("row {row} (line {line}): {reason}"));
            }
            generation.invalid(row, line, reason)?;
        }
        Prepared::Valid {
            identity,
            request_id,
            object_json,
            request_key,
        } => {
            generation.valid(
                row,
                line,
                identity,
                Request {
                    id: request_id.as_deref(),
                    object_json,
                    key: *request_key,
                },
                &key_of,
            )?;
        }
    }
    Ok(())
}

/// A required param with neither a column nor a default would make every row invalid: say so
/// once, before anything is read.
fn check_required_params(campaign: &Campaign, header: &Header) -> Result<(), IngestError> {
    let api = campaign.api;
    let missing = api.param_fields().find(|field| {
        field.required
            && Some(field.name) != api.idempotency_key
            && !campaign.params.contains_key(field.name)
            && !header.params.iter().any(|(name, _)| *name == field.name)
    });
    match missing {
        Some(field) => Err(IngestError::MissingParam {
            path: campaign.input.clone(),
            field: field.name,
        }),
        None => Ok(()),
    }
}
