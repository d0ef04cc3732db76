//! Comparing the ClickHouse rollups with the events in PostgreSQL, per (organization, hour).
//!
//! [`compare`] aggregates the events per (organization, hour) on PostgreSQL
//! and the hourly rows per (organization, hour) on ClickHouse, one version
//! per key (`FINAL`), and returns every bucket that is missing on one side
//! or differs in a total: requests, errors, tokens, cost, latency sum and
//! maximum, and the histogram's count. Run it while no run is writing and no
//! events arrive, or buckets in flight are reported too.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::transforms::postgres;
use crate::{ClickHouse, Error};

/// The totals compared, in this order.
pub const FIELDS: [&str; 8] = [
    "request_count",
    "error_count",
    "input_tokens",
    "output_tokens",
    "cost_micros",
    "latency_ms_sum",
    "latency_ms_max",
    "histogram_count",
];

const POSTGRES_SQL: &str = "\
SELECT organization_id, extract(epoch FROM date_trunc('hour', occurred_at, 'UTC'))::bigint,
       count(*), count(*) FILTER (WHERE status <> 'ok'), sum(input_tokens)::bigint,
       sum(output_tokens)::bigint, sum(cost_micros)::bigint, sum(latency_ms)::bigint,
       max(latency_ms)::bigint, count(*)
FROM public.usage_events
GROUP BY 1, 2";

const CLICKHOUSE_SQL: &str = "\
SELECT organization_id, toUnixTimestamp(hour_at), sum(request_count), sum(error_count),
       sum(input_tokens), sum(output_tokens), sum(cost_micros), sum(latency_ms_sum),
       max(latency_ms_max), sum(arraySum(latency_bin_counts))
FROM (SELECT * FROM usage_hourly_rollups FINAL)
GROUP BY organization_id, hour_at
FORMAT TabSeparated";

/// The ClickHouse totals by (organization, hour), or the first line that is
/// not ten numbers.
fn parse(text: &str) -> Result<BTreeMap<(i64, i64), [i64; 8]>, &str> {
    let mut totals = BTreeMap::new();
    for line in text.lines() {
        let numbers: Vec<i64> = line
            .split('\t')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| line)?;
        if numbers.len() != 10 {
            return Err(line);
        }
        totals.insert(
            (numbers[0], numbers[1]),
            std::array::from_fn(|i| numbers[i + 2]),
        );
    }
    Ok(totals)
}

/// One (organization, hour) bucket that is not the same on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The organization.
    pub organization_id: i64,
    /// The start of the UTC hour, in seconds since the Unix epoch.
    pub hour_at: i64,
    /// The bucket's totals on PostgreSQL (from the events), in the order of
    /// [`FIELDS`]; `None` when it has no events.
    pub postgres: Option<[i64; 8]>,
    /// The bucket's totals on ClickHouse; `None` when it has no rows.
    pub clickhouse: Option<[i64; 8]>,
}

/// Every bucket that differs between the events and the ClickHouse rollups,
/// ordered by organization and hour.
pub async fn compare(ch: &ClickHouse, source: &Client) -> Result<Vec<Difference>, Error> {
    let mut events = BTreeMap::new();
    for row in source
        .query(POSTGRES_SQL, &[])
        .await
        .map_err(postgres("totalling the events per (organization, hour)"))?
    {
        let totals: [i64; 8] = std::array::from_fn(|i| row.get(i + 2));
        events.insert((row.get::<_, i64>(0), row.get::<_, i64>(1)), totals);
    }
    let text = ch
        .query(0, CLICKHOUSE_SQL, "totalling the hourly rollups")
        .await?;
    let clickhouse = parse(&text).map_err(|line| Error::Server {
        node: ch.node_name(0),
        context: "totalling the hourly rollups".into(),
        message: format!("unexpected row {line:?}"),
    })?;
    let mut keys: Vec<(i64, i64)> = events.keys().chain(clickhouse.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    Ok(keys
        .into_iter()
        .filter_map(|key| {
            let (postgres, clickhouse) = (events.get(&key), clickhouse.get(&key));
            (postgres != clickhouse).then(|| Difference {
                organization_id: key.0,
                hour_at: key.1,
                postgres: postgres.copied(),
                clickhouse: clickhouse.copied(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clickhouse_totals_are_ten_numbers_a_line() {
        let totals = parse("7\t3600\t1\t0\t2\t3\t4\t5\t6\t1\n").unwrap();
        assert_eq!(totals[&(7, 3600)], [1, 0, 2, 3, 4, 5, 6, 1]);
        assert_eq!(parse("7\t3600\t1\n"), Err("7\t3600\t1"));
        assert_eq!(
            parse("7\t3600\t1\t0\t2\t3\t4\t5\t6\tx"),
            Err("7\t3600\t1\t0\t2\t3\t4\t5\t6\tx")
        );
    }
}
