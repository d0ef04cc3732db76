//! `dbops seed operational`: a few organizations with users, API keys and budgets, and the model registry.

use serde_json::json;
use tokio_postgres::Client;

use crate::api_key::{IssuedKey, Keyring};
use crate::{Error, fixtures, marker};

/// What to seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationalConfig {
    /// The seed: the same seed gives the same rows, byte for byte.
    pub seed: u64,
    /// How many organizations (each with its users, keys and budgets).
    pub organizations: usize,
}

impl Default for OperationalConfig {
    fn default() -> OperationalConfig {
        OperationalConfig {
            seed: 1,
            organizations: 3,
        }
    }
}

/// What a run inserted. A rerun inserts nothing and reports zeros.
#[derive(Debug, Clone, Default)]
pub struct OperationalReport {
    /// Organizations inserted.
    pub organizations: u64,
    /// Users inserted.
    pub users: u64,
    /// Models inserted into the registry.
    pub models: u64,
    /// Budgets inserted.
    pub budgets: u64,
    /// API keys inserted, with their secrets: show them once, they are not
    /// stored anywhere.
    pub keys: Vec<IssuedKey>,
}

/// Seeds the operational tables in one transaction; rows that exist already
/// are left alone.
///
/// # Errors
/// [`Error::SeededDifferently`] when the database was seeded with another
/// seed; [`Error::Database`] when a statement fails (nothing is written).
#[tracing::instrument(skip_all, fields(seed = config.seed, organizations = config.organizations))]
pub async fn seed_operational(
    client: &mut Client,
    config: &OperationalConfig,
    keyring: &Keyring,
) -> Result<OperationalReport, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(Error::db("starting the seeding transaction"))?;
    marker::lock_and_read(&tx, "operational", config.seed).await?;
    let (models, _) = fixtures::insert_models(&tx).await?;
    let (inserted, _) =
        fixtures::insert_organizations(&tx, keyring, config.seed, config.organizations).await?;
    marker::record(
        &tx,
        "operational",
        config.seed,
        &json!({ "seed": config.seed.to_string() }),
        None,
    )
    .await?;
    tx.commit()
        .await
        .map_err(Error::db("committing the operational seed"))?;
    let report = OperationalReport {
        organizations: inserted.organizations,
        users: inserted.users,
        models,
        budgets: inserted.budgets,
        keys: inserted.keys,
    };
    tracing::info!(
        organizations = report.organizations,
        users = report.users,
        keys = report.keys.len(),
        models = report.models,
        budgets = report.budgets,
        "seeded operational data"
    );
    Ok(report)
}
