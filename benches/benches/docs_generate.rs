//! `dbops docs generate` on a database of 500 tables and 5,000 columns: introspection, classification, dictionary and ERD.
//!
//! Run with `DB_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p dbops-benches --bench docs_generate`.
//! The first run creates the database `dbops_bench_docs` (500 tables of ten
//! columns each, every one with a comment, a foreign key to the previous
//! table, a unique constraint and an index); later runs reuse it. Timed:
//! - `generate`: `docgen::generate` end to end (five catalog queries, the
//!   classification map parsed and joined, both files rendered and written);
//! - `introspect`: `catalog::introspect::introspect` alone, the live model
//!   that `dbops lint --db` reads too;
//! - `render`: rendering both files from the model alone;
//! - `baseline`: one `SELECT` of `information_schema.columns` for the same
//!   tables, the query a hand-written docs script would start from.
//!
//! The machine is noisy, so the figure to quote is the median ratio of
//! `generate` to `baseline`, printed at the end from paired rounds.

use std::fmt::Write;
use std::time::{Duration, Instant};

use catalog::introspect::IntrospectOptions;
use criterion::{Criterion, criterion_group, criterion_main};
use docgen::model::DocModel;
use docgen::{Config, Source};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls};

const DATABASE: &str = "dbops_bench_docs";
const TABLES: usize = 500;
/// Columns per table, so 5,000 in all.
const COLUMNS: usize = 10;
const BASELINE: &str = "SELECT table_name, column_name, data_type, is_nullable, column_default \
                        FROM information_schema.columns WHERE table_schema = 'public' \
                        ORDER BY table_name, ordinal_position";

fn server_url() -> String {
    std::env::var("DB_URL").expect("DB_URL must name a PostgreSQL server (any database on it)")
}

fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("DB_URL looks like postgres://user@host:port/database");
    format!("{base}/{database}")
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connecting to the benchmark database");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn table_name(i: usize) -> String {
    format!("entity_{i:03}s")
}

/// The DDL of the fixture: table `i` references table `i - 1`.
fn fixture_sql() -> String {
    let mut sql = String::new();
    for i in 0..TABLES {
        let name = table_name(i);
        let _ = write!(
            sql,
            "CREATE TABLE {name} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
        );
        if i > 0 {
            let _ = writeln!(
                sql,
                "    parent_id bigint REFERENCES {} (id) ON DELETE CASCADE,",
                table_name(i - 1)
            );
        } else {
            sql.push_str("    parent_id bigint,\n");
        }
        sql.push_str(
            "    code text NOT NULL UNIQUE,\n    label varchar(200),\n    amount_micros bigint NOT NULL DEFAULT 0 CHECK (amount_micros >= 0),\n    \
             quantity integer NOT NULL DEFAULT 1,\n    tags text[] NOT NULL DEFAULT '{}',\n    metadata jsonb,\n    \
             created_at timestamptz NOT NULL DEFAULT now(),\n    deleted_at timestamptz\n);\n",
        );
        let _ = writeln!(
            sql,
            "CREATE INDEX {name}_parent_id_idx ON {name} (parent_id) WHERE deleted_at IS NULL;"
        );
        let _ = writeln!(
            sql,
            "COMMENT ON TABLE {name} IS 'Entity number {i} of the benchmark fixture.';"
        );
        let _ = writeln!(sql, "COMMENT ON COLUMN {name}.code IS 'A unique code.';");
    }
    sql
}

/// A classification map covering every column.
fn classification_map() -> String {
    let mut toml = String::new();
    for i in 0..TABLES {
        let name = table_name(i);
        let _ = writeln!(
            toml,
            "[tables.{name}]\nretention = \"400d\"\n[tables.{name}.columns]"
        );
        for column in [
            "id",
            "parent_id",
            "code",
            "label",
            "amount_micros",
            "quantity",
            "tags",
            "metadata",
            "created_at",
            "deleted_at",
        ] {
            let _ = writeln!(
                toml,
                "{column} = {{ class = \"internal\", protection = \"none\" }}"
            );
        }
    }
    toml
}

/// Creates the fixture database unless an earlier run did.
async fn ensure_database() -> Client {
    let server = connect(&server_url()).await;
    let exists = server
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
        .await
        .expect("looking for the benchmark database")
        .is_some();
    let url = with_database(&server_url(), DATABASE);
    if exists {
        let client = connect(&url).await;
        let count: i64 = client
            .query_one("SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace", &[])
            .await
            .unwrap()
            .get(0);
        if count == TABLES as i64 {
            return client;
        }
        drop(client);
        server
            .batch_execute(&format!("DROP DATABASE {DATABASE} WITH (FORCE)"))
            .await
            .unwrap();
    }
    server
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .unwrap();
    let client = connect(&url).await;
    client
        .batch_execute(&fixture_sql())
        .await
        .expect("creating the fixture tables");
    client.batch_execute("ANALYZE").await.unwrap();
    client
}

fn bench(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let client = runtime.block_on(ensure_database());
    let scratch = tempfile::tempdir().unwrap();
    let map = scratch.path().join("data-classification.toml");
    std::fs::write(&map, classification_map()).unwrap();
    let config = Config {
        docs_dir: scratch.path().join("docs"),
        classification_map: map,
    };
    let options = IntrospectOptions::default();
    let sources = [Source {
        client: &client,
        options: &options,
    }];

    let generated = runtime
        .block_on(docgen::generate(&sources, &config))
        .unwrap();
    assert!(
        generated.classification_gaps.is_empty(),
        "{:?}",
        &generated.classification_gaps[..3]
    );
    let (schema, _) = runtime
        .block_on(docgen::classified_schema(&sources, &config))
        .unwrap();
    let columns: usize = schema.tables.iter().map(|t| t.columns.len()).sum();
    assert_eq!((schema.tables.len(), columns), (TABLES, TABLES * COLUMNS));
    let model = DocModel::from_schema(&schema);

    let mut group = c.benchmark_group("docs_500_tables_5000_columns");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("generate", |b| {
        b.to_async(&runtime)
            .iter(|| async { docgen::generate(&sources, &config).await.unwrap() })
    });
    group.bench_function("introspect", |b| {
        b.to_async(&runtime).iter(|| async {
            catalog::introspect::introspect(&client, &options)
                .await
                .unwrap()
        })
    });
    group.bench_function("render", |b| b.iter(|| docgen::render(&model)));
    group.bench_function("baseline", |b| {
        b.to_async(&runtime)
            .iter(|| async { client.query(BASELINE, &[]).await.unwrap() })
    });
    group.finish();

    // Paired rounds: the ratio cancels the machine's drift.
    let mut ratios = Vec::new();
    let mut generate_times = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        runtime
            .block_on(docgen::generate(&sources, &config))
            .unwrap();
        let generate = started.elapsed();
        let started = Instant::now();
        runtime.block_on(client.query(BASELINE, &[])).unwrap();
        let baseline = started.elapsed();
        ratios.push(generate.as_secs_f64() / baseline.as_secs_f64());
        generate_times.push(generate);
    }
    ratios.sort_by(f64::total_cmp);
    generate_times.sort();
    println!(
        "docs generate, {TABLES} tables / {} columns: median {:.0?} (max {:.0?}); median ratio to the \
         information_schema.columns baseline: {:.2}",
        TABLES * COLUMNS,
        generate_times[generate_times.len() / 2],
        generate_times[generate_times.len() - 1],
        ratios[ratios.len() / 2]
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
