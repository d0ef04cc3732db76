//! `dbops seed`: deterministic, idempotent seed data, through the `seeder` crate.
//!
//! Refused (exit 12) in an environment whose policy does not allow seeding
//! (`allow_seed`; by default, `production`), before anything is read or written.

use seeder::analytics::{AnalyticsConfig, seed_analytics};
use seeder::api_key::Keyring;
use seeder::operational::{OperationalConfig, seed_operational};

use crate::CliError;
use crate::context::{Context, connect_url, connection_config};
use crate::exit_code;
use crate::opt::{SeedCommand, SeedEnvArgs};

/// Runs one `seed` subcommand against the operational database.
pub async fn run(context: &Context<'_>, command: SeedCommand) -> Result<i32, CliError> {
    let (SeedCommand::Operational { env, .. } | SeedCommand::Analytics { env, .. }) = &command;
    check_policy(context, env)?;
    // Without the pepper no key can be stored: fail before touching the database.
    let keyring = Keyring::from_env()?;
    let url = context.database_url("operational")?;
    let config = connection_config(&url)?;
    match command {
        SeedCommand::Operational { seed, orgs, .. } => {
            let mut client = connect_url(&url, "dbops seed").await?;
            let settings = OperationalConfig {
                seed,
                organizations: orgs as usize,
            };
            let report = seed_operational(&mut client, &settings, &keyring).await?;
            println!(
                "seeded {} organization(s), {} user(s), {} API key(s), {} budget(s), {} model(s)",
                report.organizations,
                report.users,
                report.keys.len(),
                report.budgets,
                report.models
            );
            if !report.keys.is_empty() {
                // The one time these secrets exist outside their owner's hands:
                // standard output only, never the log.
                println!("API keys, shown once (only their HMAC is stored):");
                for key in &report.keys {
                    println!(
                        "  organization {:>6}  {:<16}  {}",
                        key.organization_id,
                        key.name,
                        key.secret.expose()
                    );
                }
            }
        }
        SeedCommand::Analytics {
            events,
            seed,
            days,
            orgs,
            late_share,
            until,
            streams,
            ..
        } => {
            let settings = AnalyticsConfig {
                seed,
                events,
                days,
                organizations: orgs as usize,
                late_share,
                until,
                streams,
                progress: true,
            };
            let report = seed_analytics(&config, &settings, &keyring).await?;
            let seconds = report.load_time.as_secs_f64();
            println!(
                "seeded {} organization(s), {} budget(s), {} model(s); {} event(s) loaded in {:.1} s ({:.0} events/s), {} already present; {} partition(s) created",
                report.organizations,
                report.budgets,
                report.models,
                report.events_loaded,
                seconds,
                if seconds > 0.0 {
                    report.events_loaded as f64 / seconds
                } else {
                    0.0
                },
                report.events_present,
                report.partitions_created.len()
            );
        }
    }
    Ok(exit_code::SUCCESS)
}

/// Refuses seeding where the environment's policy does not allow it. Without
/// `--env`, the `local` environment's policy applies, or none when the
/// configuration has no such environment.
fn check_policy(context: &Context<'_>, env: &SeedEnvArgs) -> Result<(), CliError> {
    let name = env.environment.as_deref().unwrap_or("local");
    let policy = match &env.environment {
        Some(name) => context.config.environment(name)?,
        None => match context.config.environments.get(name) {
            Some(policy) => policy,
            None => return Ok(()),
        },
    };
    if policy.allows_seed(name) {
        Ok(())
    } else {
        Err(CliError::Refused(format!(
            "environment {name} does not allow seeding (allow_seed in [environments.{name}] of the configuration{}): \
             seed data and the API keys it prints are for development and test databases",
            if policy.allow_seed.is_none() {
                ", unset: refused in production"
            } else {
                ""
            }
        )))
    }
}
