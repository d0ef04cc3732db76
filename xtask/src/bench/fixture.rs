//! The migration fixture of the apply benchmarks: the Rust port of
//! `shared/benchmarks/gen-migrations.sh` (the dbops layout and `all.sql`),
//! so that the repository can make it on its own.
//!
//! Migration `i` (from 1) creates table `bench_t<i>` with an identity key,
//! an index and 100 rows; its version is 2025-01-01 00:00 UTC plus `i`
//! minutes. `all-down.sql` (not in the script) drops the tables in reverse
//! order, as the floor for rolling back.

use std::path::{Path, PathBuf};

use crate::Result;

/// A written fixture.
#[derive(Debug)]
pub struct Fixture {
    /// The migrations folder, for `dbops migrate ... --dir`.
    pub migrations: PathBuf,
    /// Every up migration in one file, in order.
    pub all_up: PathBuf,
    /// Every down migration in one file, newest first.
    pub all_down: PathBuf,
    /// Every up migration in one file, each in a transaction of its own
    /// ([`one_transaction_each`]).
    pub each_up: PathBuf,
    /// Every down migration in one file, newest first, each in a
    /// transaction of its own.
    pub each_down: PathBuf,
}

/// One migration of a fixture.
#[derive(Debug)]
pub struct Migration {
    /// `YYYYMMDDHHMM`.
    pub version: String,
    pub slug: String,
    pub up: String,
    pub down: String,
}

/// Writes `count` migrations under `out`, replacing what was there.
pub fn write(out: &Path, count: usize) -> Result<Fixture> {
    let migrations: Vec<Migration> = (1..=count)
        .map(|i| Migration {
            version: version(i),
            slug: format!("bench_t{i}"),
            up: up_sql(i),
            down: format!("DROP TABLE bench_t{i};\n"),
        })
        .collect();
    let all_up: String = migrations.iter().map(|m| m.up.as_str()).collect();
    let all_down: String = migrations.iter().rev().map(|m| m.down.as_str()).collect();
    write_files(out, &migrations, &all_up, &all_down)
}

/// The first line of a script that runs outside a transaction.
pub const NO_TRANSACTION: &str = "-- dbops:no-transaction\n";

/// The scripts in one file, as `psql -1` would run them if it could run
/// no-transaction scripts: each stretch of transactional scripts in one
/// transaction, the no-transaction ones between them.
pub fn in_stretches<'a>(scripts: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut open = false;
    for sql in scripts {
        let transactional = !sql.starts_with(NO_TRANSACTION);
        if transactional != open {
            out.push_str(if open { "COMMIT;\n" } else { "BEGIN;\n" });
            open = transactional;
        }
        out.push_str(sql);
    }
    if open {
        out.push_str("COMMIT;\n");
    }
    out
}

/// The floor of any tool that commits once per migration, as dbops does by
/// default: the scripts in one file, each transactional one in a
/// transaction of its own that does not wait for its WAL flush, the
/// no-transaction ones as they are, and at the end one commit that writes
/// WAL and waits for its flush (dbops's `durability = "per-run"`).
pub fn one_transaction_each<'a>(scripts: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for sql in scripts {
        if sql.starts_with(NO_TRANSACTION) {
            out.push_str(sql);
        } else {
            out.push_str("BEGIN;\nSET LOCAL synchronous_commit = off;\n");
            out.push_str(sql);
            out.push_str(";\nCOMMIT;\n");
        }
    }
    out.push_str(
        "BEGIN;\nSET LOCAL synchronous_commit = on;\n\
         CREATE TABLE xtask_flush ();\nDROP TABLE xtask_flush;\nCOMMIT;\n",
    );
    out
}

/// Writes `migrations` (as `<version>_<slug>.up.sql` and `.down.sql`), the
/// two files of every up and every down (`all_up`, `all_down`) and the two
/// of one transaction per migration under `out`, replacing what was there.
pub fn write_files(
    out: &Path,
    migrations: &[Migration],
    all_up: &str,
    all_down: &str,
) -> Result<Fixture> {
    let fixture = Fixture {
        migrations: out.join("dbops"),
        all_up: out.join("all.sql"),
        all_down: out.join("all-down.sql"),
        each_up: out.join("each.sql"),
        each_down: out.join("each-down.sql"),
    };
    let each_up = one_transaction_each(migrations.iter().map(|m| m.up.as_str()));
    let each_down = one_transaction_each(migrations.iter().rev().map(|m| m.down.as_str()));
    let written = (|| {
        if out.exists() {
            std::fs::remove_dir_all(out)?;
        }
        std::fs::create_dir_all(&fixture.migrations)?;
        for migration in migrations {
            let stem = format!("{}_{}", migration.version, migration.slug);
            let dir = &fixture.migrations;
            std::fs::write(dir.join(format!("{stem}.up.sql")), &migration.up)?;
            std::fs::write(dir.join(format!("{stem}.down.sql")), &migration.down)?;
        }
        std::fs::write(&fixture.all_up, all_up)?;
        std::fs::write(&fixture.all_down, all_down)?;
        std::fs::write(&fixture.each_up, &each_up)?;
        std::fs::write(&fixture.each_down, &each_down)
    })();
    written
        .map_err(|e: std::io::Error| format!("writing the fixture in {}: {e}", out.display()))?;
    Ok(fixture)
}

fn up_sql(i: usize) -> String {
    format!(
        "CREATE TABLE bench_t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, org_id bigint NOT NULL, \
         name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());\n\
         CREATE INDEX bench_t{i}_org_id_idx ON bench_t{i} (org_id);\n\
         INSERT INTO bench_t{i} (org_id, name) SELECT g % 10, 'row ' || g FROM generate_series(1, 100) g;\n"
    )
}

/// `YYYYMMDDHHMM` of 2025-01-01 00:00 UTC plus `minutes`.
pub fn version(minutes: usize) -> String {
    const DAYS_TO_2025: i64 = 20_089; // 1970-01-01 to 2025-01-01
    let minutes = minutes as i64;
    let (year, month, day) = civil_from_days(DAYS_TO_2025 + minutes / 1440);
    let (hour, minute) = (minutes % 1440 / 60, minutes % 60);
    format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::{NO_TRANSACTION, one_transaction_each, version, write};

    #[test]
    fn each_transactional_script_commits_alone_and_the_last_commit_waits() {
        let concurrently = format!("{NO_TRANSACTION}CREATE INDEX CONCURRENTLY i ON t (c);\n");
        let each = one_transaction_each(
            [
                "CREATE TABLE t (c int);\n",
                concurrently.as_str(),
                "DROP TABLE u;",
            ]
            .into_iter(),
        );
        assert_eq!(
            each,
            format!(
                "BEGIN;\nSET LOCAL synchronous_commit = off;\nCREATE TABLE t (c int);\n;\nCOMMIT;\n\
                 {concurrently}\
                 BEGIN;\nSET LOCAL synchronous_commit = off;\nDROP TABLE u;;\nCOMMIT;\n\
                 BEGIN;\nSET LOCAL synchronous_commit = on;\n\
                 CREATE TABLE xtask_flush ();\nDROP TABLE xtask_flush;\nCOMMIT;\n"
            )
        );
    }

    #[test]
    fn versions_count_minutes_from_new_year_2025() {
        assert_eq!(version(1), "202501010001");
        assert_eq!(version(1500), "202501020100");
        assert_eq!(version(59 * 1440), "202503010000");
        assert_eq!(version(365 * 1440 + 61), "202601010101");
    }

    #[test]
    fn writes_the_same_files_as_gen_migrations_sh() {
        let out = std::env::temp_dir().join(format!("xtask-fixture-{}", std::process::id()));
        let fixture = write(&out, 2).unwrap();
        let read = |name: &str| std::fs::read_to_string(fixture.migrations.join(name)).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&fixture.migrations)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "202501010001_bench_t1.down.sql",
                "202501010001_bench_t1.up.sql",
                "202501010002_bench_t2.down.sql",
                "202501010002_bench_t2.up.sql",
            ]
        );
        assert_eq!(
            read("202501010002_bench_t2.up.sql"),
            "CREATE TABLE bench_t2 (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, org_id bigint NOT NULL, \
             name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());\n\
             CREATE INDEX bench_t2_org_id_idx ON bench_t2 (org_id);\n\
             INSERT INTO bench_t2 (org_id, name) SELECT g % 10, 'row ' || g FROM generate_series(1, 100) g;\n"
        );
        assert_eq!(
            read("202501010001_bench_t1.down.sql"),
            "DROP TABLE bench_t1;\n"
        );
        let all_up = std::fs::read_to_string(&fixture.all_up).unwrap();
        assert_eq!(
            all_up,
            read("202501010001_bench_t1.up.sql") + &read("202501010002_bench_t2.up.sql")
        );
        let all_down = std::fs::read_to_string(&fixture.all_down).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        assert_eq!(all_down, "DROP TABLE bench_t2;\nDROP TABLE bench_t1;\n");
    }
}
