//! The cases the apply benchmarks time: `dbops migrate` applying a folder or
//! rolling it back, and `psql` running files of the same SQL, each round on
//! a fresh database of its own.

use std::path::Path;
use std::process::Command;

use url::Url;

use super::Context;
use super::paired::Case;
use crate::cmd;
use crate::pg::psql;

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
}
