//! The cases the apply benchmarks time: `dbops migrate` applying a folder or
//! rolling it back, and `psql` running files of the same SQL, each round on
//! a fresh database of its own.

use std::path::Path;
use std::process::Command;

use url::Url;

use super::Context;
use super::paired::{Case, paired};
use crate::pg::psql;
use crate::{Result, cmd};

/// `dbops migrate up` arguments: the fixtures' names break the project's
/// conventions, so lint errors are allowed (the lint still runs and is timed).
pub const UP: &[&str] = &["up", "--allow-lint-errors"];

/// How `psql` runs a file.
#[derive(Debug, Clone, Copy)]
pub enum Psql {
    /// `psql -1 -f`: the whole file in one transaction.
    OneTransaction,
    /// `psql -f`: the file holds its own transactions.
    AsWritten,
}

impl Psql {
    /// The command that runs `file` against `db`.
    pub fn command(self, db: &Url, file: &Path) -> Command {
        let mut psql = psql::psql(db);
        if let Psql::OneTransaction = self {
            psql.arg("-1");
        }
        psql.arg("-f").arg(file);
        psql
    }
}

/// A migrations folder and the two databases it is timed on.
#[derive(Clone, Copy)]
pub struct Cases<'a> {
    ctx: &'a Context,
    dir: &'a Path,
    psql_db: &'static str,
    dbops_db: &'static str,
}

impl<'a> Cases<'a> {
    pub fn new(
        ctx: &'a Context,
        dir: &'a Path,
        psql_db: &'static str,
        dbops_db: &'static str,
    ) -> Cases<'a> {
        Cases {
            ctx,
            dir,
            psql_db,
            dbops_db,
        }
    }

    /// `dbops migrate ARGS --dir DIR` against `db`.
    pub fn dbops(&self, db: &Url, args: &[&str]) -> Command {
        let mut dbops = self.ctx.dbops(db);
        dbops.arg("migrate").args(args).arg("--dir").arg(self.dir);
        dbops
    }

    /// A fresh database for dbops.
    pub fn dbops_database(&self) -> crate::Result<Url> {
        self.ctx.fresh_database(self.dbops_db)
    }

    /// `dbops migrate up` on a fresh database.
    pub fn dbops_up(self) -> Case<'a> {
        Case::new("dbops migrate up --allow-lint-errors --dir", move || {
            Ok(self.dbops(&self.dbops_database()?, UP))
        })
    }

    /// `dbops migrate down --to VERSION`, after an untimed `up`.
    pub fn dbops_down(self, to: &'a str) -> Case<'a> {
        Case::new(format!("dbops migrate down --to {to} --dir"), move || {
            let db = self.dbops_database()?;
            cmd::output(&mut self.dbops(&db, UP))?;
            Ok(self.dbops(&db, &["down", "--to", to]))
        })
    }

    /// `psql` running `file` on a fresh database.
    pub fn psql_up(self, label: &'a str, psql: Psql, file: &'a Path) -> Case<'a> {
        Case::new(label, move || {
            Ok(psql.command(&self.ctx.fresh_database(self.psql_db)?, file))
        })
    }

    /// `psql` running `down`, after an untimed run of `up`.
    pub fn psql_down(self, label: &'a str, psql: Psql, up: &'a Path, down: &'a Path) -> Case<'a> {
        Case::new(label, move || {
            let db = self.ctx.fresh_database(self.psql_db)?;
            cmd::output(&mut psql.command(&db, up))?;
            Ok(psql.command(&db, down))
        })
    }

    /// Applying and rolling back, timed against `each_up` and `each_down`
    /// (one transaction per migration: `fixture::one_transaction_each`), the
    /// floor of any tool that commits each migration on its own. Prints both
    /// reports under `what` ("300 migrations"); `check` runs after each,
    /// with whether the migrations should be there.
    pub fn against_one_commit_each(
        self,
        rounds: usize,
        what: &str,
        (each_up, each_down): (&'a Path, &'a Path),
        down_to: &'a str,
        check: impl Fn(bool) -> Result,
    ) -> Result {
        let up = paired(
            rounds,
            self.psql_up("psql -f each.sql", Psql::AsWritten, each_up),
            self.dbops_up(),
        )?;
        check(true)?;
        println!(
            "\n### Applying {what}, against one transaction per migration\n\n{}",
            up.report()
        );
        let down = paired(
            rounds,
            self.psql_down("psql -f each-down.sql", Psql::AsWritten, each_up, each_down),
            self.dbops_down(down_to),
        )?;
        check(false)?;
        println!(
            "\n### Rolling {what} back, against one transaction per migration\n\n{}",
            down.report()
        );
        Ok(())
    }
}
