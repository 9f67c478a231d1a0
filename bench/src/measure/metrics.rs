//! Reading counters from a Prometheus text exposition (Switchboard's `GET /metrics`).

/// The counter of store calls. `prometheus-client` prefixes the registry name (`switchboard_`)
/// and suffixes counters with `_total`.
pub const STORE_QUERIES: &str = "switchboard_store_queries_total";

/// The value of the unlabelled sample `name`, or the sum over its label sets.
pub fn counter(exposition: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let metric = series.split('{').next().unwrap_or(series);
        if metric == name {
            if let Ok(value) = value.trim().parse::<f64>() {
                *total.get_or_insert(0.0) += value;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plain_and_labelled_counters() {
        let text = "# HELP switchboard_store_queries Calls into the store.\n\
                    # TYPE switchboard_store_queries counter\n\
                    switchboard_store_queries_total 1234\n\
                    switchboard_signals_delivered_total{transport=\"websocket\"} 5\n\
                    switchboard_signals_delivered_total{transport=\"sse\"} 2\n";
        assert_eq!(counter(text, STORE_QUERIES), Some(1234.0));
        assert_eq!(
            counter(text, "switchboard_signals_delivered_total"),
            Some(7.0)
        );
        assert_eq!(counter(text, "nothing"), None);
    }
}
