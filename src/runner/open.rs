//! Getting a run ready: the checks that need nothing to be sent (secrets, notifications, paths),
//! then the ledger (run lock, crash recovery, ingest, the user's reopen flags), the built-in
//! simulator when the campaign asks for it, and the HTTP client.

use anyhow::Context;

use super::{RunOptions, confirm};
use crate::campaign::{Campaign, GatewayUrl, Secrets};
use crate::domain::now_rfc3339;
use crate::ingest::{Purpose, ingest};
use crate::ledger::budget::BudgetUse;
use crate::ledger::{self, Ledger, RunLock};
use crate::notify::Notifier;
use crate::top::client::{Client, ClientConfig};

/// What the checks found: the secrets and the notifier, if the campaign has one.
pub(super) struct Checked {
    secrets: Secrets,
    pub(super) notifier: Option<Notifier>,
}

/// A run ready to send.
pub(super) struct Session {
    /// The run lock on the state file, held until the run ends.
    pub(super) lock: RunLock,
    pub(super) ledger: Ledger,
    pub(super) client: Client,
    /// The built-in simulator, for a `url = "sim"` campaign.
    pub(super) sim: Option<crate::sim::SimServer>,
    pub(super) notifier: Option<Notifier>,
    /// `max_issued` with what the ledger counts against it (before rows were reopened).
    pub(super) budget: Option<(u64, BudgetUse)>,
}

/// Everything that can be found wrong before the ledger is touched.
pub(super) fn check(campaign: &Campaign) -> anyhow::Result<Checked> {
    let secrets = campaign.secrets()?;
    let notifier = match &campaign.notify {
        Some(config) => Some(Notifier::new(config, campaign.notify_secret()?)?),
        None => None,
    };
    // Found now, not after every row was sent.
    crate::paths::check_run(campaign)?;
    Ok(Checked { secrets, notifier })
}

/// Takes the run lock, brings the ledger up to date, asks the user to confirm a run against a
/// real gateway (unless `--yes`), and builds the client. `None` when the user did not confirm.
pub(super) async fn open(
    campaign: &Campaign,
    options: &RunOptions,
    checked: Checked,
) -> anyhow::Result<Option<Session>> {
    if !campaign.state.exists() {
        crate::audit::refuse_fresh_ledger(campaign)?;
    }
    let lock = ledger::lock(&campaign.state)?;
    let mut ledger = Ledger::open(&campaign.state, &campaign.name, campaign.api.method)?;
    crate::audit::refuse_ledger_behind_results(&ledger, campaign)?;
    let budget = prepare(&mut ledger, campaign, options)?;
    if confirm::needed(campaign, options.yes)
        && !confirmed(campaign, options, &ledger, &budget).await?
    {
        return Ok(None);
    }
    let (client, sim) = connect(campaign, &checked.secrets).await?;
    Ok(Some(Session {
        lock,
        ledger,
        client,
        sim,
        notifier: checked.notifier,
        budget,
    }))
}

/// The gateway's client, starting the built-in simulator first for `url = "sim"`.
pub(crate) async fn connect(
    campaign: &Campaign,
    secrets: &Secrets,
) -> anyhow::Result<(Client, Option<crate::sim::SimServer>)> {
    let sim = match &campaign.gateway.url {
        GatewayUrl::Sim => Some(start_sim(campaign, secrets).await?),
        GatewayUrl::Http(_) => None,
    };
    let url = match (&campaign.gateway.url, &sim) {
        (GatewayUrl::Http(url), _) => url.clone(),
        (GatewayUrl::Sim, Some(sim)) => sim.url(),
        (GatewayUrl::Sim, None) => unreachable!("the simulator was started above"),
    };
    let client = Client::new(
        ClientConfig {
            url,
            app_key: campaign.gateway.app_key.clone(),
            secret: secrets.app_secret.clone(),
            session: secrets.session.clone(),
            sign_method: campaign.gateway.sign_method,
            connect_timeout: campaign.gateway.connect_timeout,
            request_timeout: campaign.gateway.timeout,
        },
        campaign.api,
    )
    .context("cannot build the HTTP client")?;
    Ok((client, sim))
}

/// Asks whether to send the rows this run would send.
async fn confirmed(
    campaign: &Campaign,
    options: &RunOptions,
    ledger: &Ledger,
    budget: &Option<(u64, BudgetUse)>,
) -> anyhow::Result<bool> {
    let mut rows = ledger.pending_count(ledger.generation()?)?;
    let used = budget.as_ref().map(|(max, found)| (*max, found.used));
    if let Some((max, used)) = used {
        rows = rows.min(max.saturating_sub(used));
    }
    if let Some(limit) = options.limit {
        rows = rows.min(limit);
    }
    let plan = confirm::Plan {
        campaign,
        rows,
        budget: used,
    };
    confirm::ask(&plan).await
}

/// Crash recovery, ingest, and the user's reopen flags, with what they found said out loud.
/// Returns `max_issued` with what the ledger counts against it, before rows are reopened: a
/// reopened `uncertain` row may have been issued, so it counts again when it is sent.
fn prepare(
    ledger: &mut Ledger,
    campaign: &Campaign,
    options: &RunOptions,
) -> anyhow::Result<Option<(u64, BudgetUse)>> {
    let recovered = ledger.recover_in_flight(campaign.api.is_idempotent(), &now_rfc3339())?;
    if recovered > 0 {
        if campaign.api.is_idempotent() {
            tracing::warn!(
                "{recovered} rows were in flight when the last run stopped; they will be sent again with the same request_id"
            );
        } else {
            tracing::warn!(
                "{recovered} rows were in flight when the last run stopped and are now `uncertain`: \
                 the platform may have issued them; they are reconciled by query once older than \
                 reconcile_after_s (or check them, then use --resend-uncertain)"
            );
        }
    }
    let report = ingest(ledger, campaign, Purpose::Run)?;
    if report.input_changed {
        tracing::warn!(
            "the input file changed since the last run; rows were re-read, and rows already sent keep their state (nothing is issued twice)"
        );
    }
    if report.params_changed {
        tracing::warn!(
            "the campaign params changed since the last run; they apply to rows not yet sent, and rows already sent are not sent again"
        );
    }
    let budget = match campaign.limits.max_issued {
        Some(max) => Some((max, ledger.budget_use(campaign.api.is_idempotent())?)),
        None => None,
    };
    let reopened = ledger.reopen(options.reopen.failed, options.reopen.uncertain)?;
    if reopened > 0 {
        tracing::info!("{reopened} rows reopened for sending");
    }
    Ok(budget)
}

/// `on_quit` preceded by saving the built-in simulator's book, if there is one: a hard quit
/// exits without dropping the server.
pub(crate) fn on_quit_saving(
    sim: Option<&crate::sim::SimServer>,
    on_quit: super::signals::OnQuit,
) -> super::signals::OnQuit {
    let book = sim.and_then(crate::sim::SimServer::book);
    Box::new(move || {
        if let Some(book) = book {
            book.save();
        }
        on_quit();
    })
}

/// Starts the built-in simulator on 127.0.0.1 with the campaign's app key and secrets.
pub(crate) async fn start_sim(
    campaign: &Campaign,
    secrets: &Secrets,
) -> anyhow::Result<crate::sim::SimServer> {
    let config = crate::sim::SimConfig {
        app_key: campaign.gateway.app_key.clone(),
        secret: secrets.app_secret.expose().to_owned(),
        session: secrets
            .session
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default(),
        ..crate::sim::SimConfig::default()
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut sim = crate::sim::start(config, addr)
        .await
        .context("cannot start the built-in simulator")?;
    // Saved by the server itself whatever way the command ends (its shutdown, or its drop on
    // an error), and by a hard quit (see `on_quit_saving`).
    sim.keep_book(&crate::sim::book_path(&campaign.state))?;
    Ok(sim)
}
