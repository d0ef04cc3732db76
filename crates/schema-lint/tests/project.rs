//! The project's own migrations and configuration, linted as CI lints them.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn configs_lint_toml_loads() {
    let config = schema_lint::Config::load(&repo_root().join("configs/lint.toml"))
        .expect("configs/lint.toml is valid");
    assert!(
        config.classification.is_some(),
        "configs/lint.toml names the data-classification map"
    );
}

#[test]
fn project_migrations_lint_clean() {
    let root = repo_root();
    let config = schema_lint::Config::load(&root.join("configs/lint.toml")).unwrap();
    let violations = schema_lint::lint_paths(&[root.join("migrations")], &config).unwrap();
    let report =
        schema_lint::render::human(&violations).replace(&format!("{}/", root.display()), "");
    expect_test::expect![[r#"
        error[classification-missing]: table `analytics.usage_hourly_rollups` (14 columns) is not in the data-classification map
           --> migrations/analytics/202511160001_rollups.up.sql:32:1
            |
         32 | CREATE TABLE analytics.usage_hourly_rollups (
            | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         33 |     hour_at timestamptz NOT NULL,
            |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         34 |     organization_id bigint NOT NULL,
            |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         35 |     api_key_id bigint NOT NULL,
            |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^
         36 |     model_id bigint NOT NULL,
            |     ^^^^^^^^^^^^^^^^^^^^^^^^^
         37 |     request_count bigint NOT NULL,
            |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         38 |     error_count bigint NOT NULL,
            |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^
           = help: add [tables."analytics.usage_hourly_rollups"] with a retention and a [tables."analytics.usage_hourly_rollups".columns] entry per column
        error[naming-primary-key]: primary key of `usage_hourly_rollups` is (hour_at, organization_id, api_key_id, model_id), not (id)
           --> migrations/analytics/202511160001_rollups.up.sql:47:5
            |
         32 | CREATE TABLE analytics.usage_hourly_rollups (
            | ...
         47 |     CONSTRAINT usage_hourly_rollups_pkey PRIMARY KEY (hour_at, organization_id, api_key_id, model_id),
            |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
           = help: use a surrogate `id` (with the partition key on a partitioned table); enforce natural keys with a unique constraint
        error[classification-missing]: table `analytics.usage_daily_rollups` (14 columns) is not in the data-classification map
            --> migrations/analytics/202511160001_rollups.up.sql:83:1
             |
          83 | CREATE TABLE analytics.usage_daily_rollups (
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
          84 |     day date NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^
          85 |     organization_id bigint NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
          86 |     api_key_id bigint NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^
          87 |     model_id bigint NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^
          88 |     request_count bigint NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
          89 |     error_count bigint NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^
           = help: add [tables."analytics.usage_daily_rollups"] with a retention and a [tables."analytics.usage_daily_rollups".columns] entry per column
        error[naming-primary-key]: primary key of `usage_daily_rollups` is (day, organization_id, api_key_id, model_id), not (id)
            --> migrations/analytics/202511160001_rollups.up.sql:98:5
             |
          83 | CREATE TABLE analytics.usage_daily_rollups (
             | ...
          98 |     CONSTRAINT usage_daily_rollups_pkey PRIMARY KEY (day, organization_id, api_key_id, model_id),
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
           = help: use a surrogate `id` (with the partition key on a partitioned table); enforce natural keys with a unique constraint
        error[classification-missing]: table `analytics.rollup_watermarks` (4 columns) is not in the data-classification map
            --> migrations/analytics/202511160001_rollups.up.sql:163:1
             |
         163 | CREATE TABLE analytics.rollup_watermarks (
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         164 |     id bigint GENERATED ALWAYS AS IDENTITY,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         165 |     source_table text NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^
         166 |     watermark_at timestamptz NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         167 |     updated_at timestamptz NOT NULL DEFAULT now(),
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         168 |     CONSTRAINT rollup_watermarks_pkey PRIMARY KEY (id),
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         169 |     CONSTRAINT rollup_watermarks_source_table_key UNIQUE (source_table),
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
           = help: add [tables."analytics.rollup_watermarks"] with a retention and a [tables."analytics.rollup_watermarks".columns] entry per column
        error[classification-missing]: table `analytics.rollup_runs` (14 columns) is not in the data-classification map
            --> migrations/analytics/202511160001_rollups.up.sql:178:1
             |
         178 | CREATE TABLE analytics.rollup_runs (
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         179 |     id bigint GENERATED ALWAYS AS IDENTITY,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         180 |     target text NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^^^^
         181 |     status text NOT NULL DEFAULT 'running',
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         182 |     started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         183 |     finished_at timestamptz,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^
         184 |     duration_ms bigint,
             |     ^^^^^^^^^^^^^^^^^^^
           = help: add [tables."analytics.rollup_runs"] with a retention and a [tables."analytics.rollup_runs".columns] entry per column
        error[classification-missing]: table `analytics.rollup_dirty_hours` (4 columns) is not in the data-classification map
            --> migrations/analytics/202511160001_rollups.up.sql:221:1
             |
         221 | CREATE TABLE analytics.rollup_dirty_hours (
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         222 |     id bigint GENERATED ALWAYS AS IDENTITY,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         223 |     hour_at timestamptz NOT NULL,
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         224 |     queued_at timestamptz NOT NULL DEFAULT now(),
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         225 |     rollup_run_id bigint,
             |     ^^^^^^^^^^^^^^^^^^^^^
         226 |     CONSTRAINT rollup_dirty_hours_pkey PRIMARY KEY (id),
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         227 |     CONSTRAINT rollup_dirty_hours_hour_at_check CHECK (hour_at = date_trunc('hour', hour_at, 'UTC')),
             |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
           = help: add [tables."analytics.rollup_dirty_hours"] with a retention and a [tables."analytics.rollup_dirty_hours".columns] entry per column
        7 errors, 0 warnings
    "#]].assert_eq(&report);
}
