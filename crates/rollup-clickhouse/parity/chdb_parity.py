"""The ClickHouse SQL dbops sends, on a current ClickHouse (chDB) and on the cluster's 18.16.

Runs the schema of migrations/clickhouse, the history table of the migration
runner, hourly rows written as rollup_clickhouse::buckets writes them, the
daily derivations (analytics/transforms/clickhouse/daily_rollup*.sql), the
FINAL reads, the totals query of rollup_clickhouse::totals, the three
analytics queries (analytics/queries/clickhouse) and the query assertion of
analytics/tests/clickhouse/hourly_rollup.toml, once in chDB
(the ClickHouse embedded in the PyPI package `chdb`) and once on the first
server of `cargo xtask clickhouse` (CLICKHOUSE_URLS), and fails unless every
answer is the same.

chDB runs no server and knows no remote_servers cluster, so on both sides the
statements address the per-shard tables (usage_*_local) where dbops reads the
Distributed ones; the Distributed DDL is only parsed there (EXPLAIN AST).

    python3 -m venv target/chdb-venv && target/chdb-venv/bin/pip install chdb
    CLICKHOUSE_URLS=$(cargo xtask clickhouse) target/chdb-venv/bin/python \
        crates/rollup-clickhouse/parity/chdb_parity.py
"""

import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import chdb
from chdb import session

ROOT = Path(__file__).resolve().parents[3]
DATABASE = "dbops_chdb_parity"


def statements(path):
    """The statements of a SQL file: comment lines dropped, cut at `;`."""
    text = "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    return [s.strip() for s in text.split(";") if s.strip()]


def to_local(sql):
    """Addresses the per-shard tables instead of the Distributed ones."""
    return re.sub(r"\b(usage_(hourly|daily)_rollups)\b(?!_local)", r"\1_local", sql)


migration = ROOT / "migrations/clickhouse/202612060700_rollups.up.sql"
ddl = statements(migration)
local_ddl = [s for s in ddl if "Distributed(" not in s]
distributed_ddl = [s.replace("{cluster}", "dbops") for s in ddl if "Distributed(" in s]
history_ddl = (
    "CREATE TABLE IF NOT EXISTS dbops_schema_history (version Int64, name String, "
    "checksum UInt64, direction String, applied_at DateTime, seq UInt64) "
    "ENGINE = MergeTree ORDER BY (version, seq)"
)
# Rows as buckets.rs writes them: TabSeparated, hour_at as UTC text, arrays as [a,b].
rows = []
for org in range(1, 6):
    for hour in range(22, 26):
        day, h = ("2025-11-16", hour) if hour < 24 else ("2025-11-17", hour - 24)
        for version in (1, 2):
            n = org * 10 + hour + version
            rows.append(
                f"{day} {h:02}:00:00\t{org}\t{org % 3}\t10\t{n}\t{n % 4}\t{n * 3}\t{n * 2}\t{n * 7}"
                f"\t{n * 100}\t{n * 9}\t[0,{n % 40 + 1},{n % 90 + 50}]\t[1,{n - 2},1]\t{version}"
            )
insert = "INSERT INTO usage_hourly_rollups FORMAT TabSeparated\n" + "\n".join(rows) + "\n"
daily = (
    (ROOT / "analytics/transforms/clickhouse/daily_rollup.sql")
    .read_text()
    .replace("{version}", "7")
    .replace(
        "{hourly_filter}",
        "(organization_id, toDate(hour_at)) IN ("
        + ", ".join(f"({o}, toDate('{d}'))" for o in range(1, 6) for d in ("2025-11-16", "2025-11-17"))
        + ") AND organization_id IN (1, 2, 3, 4, 5)",
    )
)
daily = "\n".join(l for l in daily.splitlines() if not l.lstrip().startswith("--"))
# A full rebuild's month derivation, with a later version: the same rows.
daily_month = "\n".join(
    l
    for l in (ROOT / "analytics/transforms/clickhouse/daily_rollup_month.sql").read_text().splitlines()
    if not l.lstrip().startswith("--")
).replace("{version}", "8").replace("{month}", "202511")
MEASURES = (
    "api_key_id, model_id, request_count, error_count, input_tokens, output_tokens, "
    "cost_micros, latency_ms_sum, latency_ms_max, latency_bins, latency_bin_counts"
)
queries = [
    "SELECT organization_id, toString(hour_at), toUnixTimestamp(hour_at), toString(toDate(hour_at)), "
    f"{MEASURES}, version FROM (SELECT * FROM usage_hourly_rollups FINAL) "
    "ORDER BY organization_id, hour_at, api_key_id, model_id",
    f"SELECT organization_id, toString(day), {MEASURES}, version FROM (SELECT * FROM usage_daily_rollups FINAL) "
    "ORDER BY organization_id, day, api_key_id, model_id",
    # rollup_clickhouse::totals
    "SELECT organization_id, toUnixTimestamp(hour_at), sum(request_count), sum(error_count), "
    "sum(input_tokens), sum(output_tokens), sum(cost_micros), sum(latency_ms_sum), "
    "max(latency_ms_max), sum(arraySum(latency_bin_counts)) "
    "FROM (SELECT * FROM usage_hourly_rollups FINAL) GROUP BY organization_id, hour_at "
    "ORDER BY organization_id, hour_at",
    # The newest version per key with argMax instead of FINAL: the same rows.
    "SELECT organization_id, toString(hour_at), api_key_id, model_id, argMax(request_count, version), "
    "argMax(latency_bins, version), max(version) FROM usage_hourly_rollups "
    "GROUP BY organization_id, hour_at, api_key_id, model_id ORDER BY organization_id, hour_at, api_key_id, model_id",
    # migrate.rs: the history table's state.
    "SELECT version, argMax(direction, seq), argMax(checksum, seq) FROM dbops_schema_history "
    "GROUP BY version ORDER BY version",
]
# The analytics queries (analytics/queries/clickhouse, rollup_clickhouse::queries)
# with the parameters written in as queries.rs writes them, and the query
# assertion of analytics/tests/clickhouse/hourly_rollup.toml (rollup_clickhouse::check).
PARAMETERS = {"{organization_id}": "3", "{until_day}": "2025-11-17", "{until_at}": "2025-11-17 02:00:00"}
for name in ("organization_daily_usage", "top_models_by_tokens", "key_error_ratio"):
    text = "\n".join(
        line
        for line in (ROOT / f"analytics/queries/clickhouse/{name}.sql").read_text().splitlines()
        if not line.lstrip().startswith("--")
    )
    for placeholder, value in PARAMETERS.items():
        text = text.replace(placeholder, value)
    queries.append(text)
assertions = (ROOT / "analytics/tests/clickhouse/hourly_rollup.toml").read_text()
# Its violations are counted, as check.rs does: none here.
queries.append("SELECT count() FROM (" + assertions.split('sql = """', 1)[1].split('"""', 1)[0] + ")")
history_rows = [
    "INSERT INTO dbops_schema_history (version, name, checksum, direction, applied_at, seq) "
    f"SELECT 202612060700, '202612060700_rollups', 42, '{d}', now(), "
    "(SELECT max(seq) FROM dbops_schema_history) + 1"
    for d in ("up", "down", "up")
]


def run(execute):
    """Runs the whole sequence with `execute(sql) -> text` and returns the answers."""
    execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    execute(f"CREATE DATABASE {DATABASE}")
    for sql in local_ddl + [history_ddl]:
        execute(sql)
    execute(to_local(insert))
    execute(to_local(daily))
    execute(to_local(daily_month))
    for sql in history_rows:
        execute(sql)
    answers = [execute(to_local(q) + " FORMAT TabSeparated") for q in queries]
    execute(f"DROP DATABASE {DATABASE}")
    return answers


def main():
    urls = os.environ.get("CLICKHOUSE_URLS")
    if not urls:
        sys.exit("CLICKHOUSE_URLS is unset: export what `cargo xtask clickhouse` prints")
    url = urls.split(",")[0]

    def server(sql):
        outside = sql.startswith(("CREATE DATABASE", "DROP DATABASE", "SELECT version()"))
        params = {} if outside else {"database": DATABASE}
        request = urllib.request.Request(
            url + "/?" + urllib.parse.urlencode(params), data=sql.encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request) as answer:
                return answer.read().decode()
        except urllib.error.HTTPError as error:
            sys.exit(f"ClickHouse at {url} refused {sql[:200]!r}: {error.read().decode()}")

    sess = session.Session()

    def current(sql):
        if not sql.startswith(("CREATE DATABASE", "DROP DATABASE")):
            sess.query(f"USE {DATABASE}")
        return str(sess.query(sql, "TabSeparated"))

    old_version = server("SELECT version()").strip()
    new_version = str(sess.query("SELECT version()", "TabSeparated")).strip()
    for sql in distributed_ddl:
        sess.query("EXPLAIN AST " + sql)
    old, new = run(server), run(current)
    for i, (a, b) in enumerate(zip(old, new)):
        if a != b:
            sys.exit(f"query {i} differs between ClickHouse {old_version} and {new_version}:\n"
                     f"--- {old_version}\n{a}\n--- {new_version}\n{b}")
        if not a.strip():
            sys.exit(f"query {i} answered nothing")
    print(f"chdb parity: {len(queries)} queries, same answers on ClickHouse {old_version} "
          f"and {new_version} ({sum(len(a.splitlines()) for a in old)} rows)")


if __name__ == "__main__":
    main()
