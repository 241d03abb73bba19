//! `scripts/bench-cost`: the cost bench at 10,000 (or `EXTCONN_COST_N`) against the AWS
//! emulator — AWS requests per operation for (a) a no-change sync of a 10,000-file connection,
//! (b) an import of 1,000 new files (and a 1,000-file initial import), (c) one scheduler tick
//! with 10,000 due connections, (d) listing the runs of a connection with 10,000 runs, (e) the
//! hourly grant sweep with 10,000 grants of which 10 are due. Prints a table and writes the
//! counts as JSON to `EXTCONN_COST_JSON` (default `target/cost-bench.json`) for
//! `scripts/cost.py`. Counts, never times.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n =
        std::env::var("EXTCONN_COST_N").ok().map_or(10_000, |v| v.parse().expect("EXTCONN_COST_N: a number"));
    let out = std::env::var("EXTCONN_COST_JSON").unwrap_or_else(|_| "target/cost-bench.json".into());
    let started = std::time::Instant::now();
    let report = extconn_system_tests::cost::run(n).await;
    print!("{}", report.table());
    let json = serde_json::to_string_pretty(&report.to_json()).expect("json");
    std::fs::write(&out, json + "\n").expect("write the JSON report");
    println!(
        "\ncounts written to {out} (setup and measurement took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
}
