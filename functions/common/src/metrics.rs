//! CloudWatch embedded metric format: one JSON line on stdout per batch of metrics, which
//! Lambda's log pipeline turns into metrics (namespace `ExtConn`, dimension `Function`).

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
    /// `Count`, `Bytes`, `Seconds`.
    pub unit: &'static str,
}

/// The EMF document for `metrics` (empty list → `None`).
pub fn emf(function: &str, metrics: &[Metric], at_ms: i64) -> Option<Value> {
    if metrics.is_empty() {
        return None;
    }
    let defs: Vec<Value> = metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect();
    let mut doc = json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{ "Namespace": "ExtConn", "Dimensions": [["Function"]], "Metrics": defs }]
        },
        "Function": function,
    });
    for m in metrics {
        doc[m.name] = json!(m.value);
    }
    Some(doc)
}

pub fn emit_metrics(function: &str, metrics: &[Metric]) {
    if let Some(doc) = emf(function, metrics, chrono::Utc::now().timestamp_millis()) {
        println!("{doc}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let d =
            emf("sync-worker", &[Metric { name: "FilesImported", value: 3.0, unit: "Count" }], 1).unwrap();
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "FilesImported");
        assert_eq!(d["FilesImported"], 3.0);
        assert_eq!(d["Function"], "sync-worker");
        assert!(emf("x", &[], 1).is_none());
    }
}
