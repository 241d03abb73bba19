//! The cost bench at 2,000 (`extconn_system_tests::cost`; `scripts/bench-cost` prints it at
//! 10,000): AWS requests asserted as counts, never times, through the Lambda handlers against
//! the AWS emulator. Fails, never skips, without the emulator.

use extconn_system_tests::cost::{self, DUE_GRANTS, Report};

const N: usize = 2_000;

/// DynamoDB page size of the scheduler's Due Query and the index's shards.
const DUE_PAGE: u64 = 100;
const SHARDS: u64 = 8;

fn check(report: &Report) {
    // (a) A no-change sync: one secret read, at most one page read (the failed-items index,
    // empty here), and DynamoDB requests — issue 14 item 7 asks for at most 8. NOT MET yet:
    // 21 today (13 GetItem: the connection read before and after the lease is taken, the run
    // before each of its updates, the grant, the connection again before the finish and the
    // release, the run once more for the worker's metrics; 4 UpdateItem, 2 transactions and a
    // PutItem: lease, current run, checkpoint, release, run started and finished, run created).
    // The ceiling guards today's count until the engine reads less.
    let a = &report.case("no_change_sync").counts;
    assert!(
        a.service("DynamoDB") <= 21,
        "no-change sync: {} DynamoDB requests\n{}",
        a.service("DynamoDB"),
        report.table()
    );
    assert!(a.op("SecretsManager.GetSecretValue") <= 1, "{}", report.table());
    assert!(a.scanned() <= 100, "no-change sync read {} items by Query", a.scanned());
    assert_eq!(a.op("DynamoDB.Scan"), 0);
    assert_eq!(a.service("S3"), 0);

    // (b) New small files: 1 S3 PUT each, a bounded per-run overhead, and DynamoDB requests
    // per file — issue 14 item 7 asks for at most 2. NOT MET yet: about 3.2 today (a GetItem of
    // the item by id, a Query of the path index for an item the new one replaced at its path —
    // Dropbox reports no deletion for a file replaced at a path — and the transaction that
    // records it). The ceiling (3.25 a file) guards today's count until the engine reads a
    // page's items with BatchGetItem.
    let overhead = 20;
    for name in ["import_new_files", "initial_import"] {
        let case = report.case(name);
        let (b, files) = (&case.counts, case.facts["files"]);
        let folders = case.facts.get("folders").copied().unwrap_or(0);
        assert!(
            b.service("DynamoDB") <= (13 * (files + folders)).div_ceil(4) + overhead,
            "{name}: {} DynamoDB requests for {files} files\n{}",
            b.service("DynamoDB"),
            report.table()
        );
        assert_eq!(b.op("S3.PutObject"), files, "{name}: one PutObject per small file");
        assert_eq!(b.op("S3.CreateMultipartUpload"), 0, "{name}");
        assert!(b.op("SecretsManager.GetSecretValue") <= 1, "{name}");
        assert_eq!(b.op("DynamoDB.Scan"), 0, "{name}");
    }
    // The initial import's sweep reads each stored item at most once (files, folders, the root).
    // At this size the listing is one Dropbox page; at 10,000 (1,000 files, several pages) the
    // bench measures about one full read per page (docs/cost.md): not yet asserted here.
    let initial = report.case("initial_import");
    let stored = initial.facts["files"] + initial.facts["folders"] + 1;
    assert!(
        initial.counts.scanned() <= stored + DUE_PAGE,
        "the initial import read {} items by Query for {stored} stored\n{}",
        initial.counts.scanned(),
        report.table()
    );

    // (c) A tick: one conditional write per due connection, no GetItem, claims at once, a
    // SendMessageBatch per 10, the Due index read once (its due records plus at most a page per
    // shard), no Scan.
    let tick = report.case("scheduler_tick");
    let (c, due) = (&tick.counts, tick.facts["due"]);
    assert!(c.op("DynamoDB.UpdateItem") <= due, "{} claims for {due} due", c.op("DynamoDB.UpdateItem"));
    assert_eq!(c.dynamo_writes(), c.op("DynamoDB.UpdateItem"), "claims are the only writes");
    assert_eq!(c.op("DynamoDB.GetItem"), 0, "no GetItem per connection");
    assert!(c.max_in_flight("DynamoDB.UpdateItem") > 1, "claims are made concurrently");
    assert!(c.op("SQS.SendMessageBatch") <= due.div_ceil(10), "{} batches", c.op("SQS.SendMessageBatch"));
    assert!(c.op("DynamoDB.Query") <= due / DUE_PAGE + SHARDS, "{} Due pages", c.op("DynamoDB.Query"));
    assert!(c.scanned() <= due + SHARDS * DUE_PAGE, "the tick read {} index records", c.scanned());
    assert_eq!(c.op("DynamoDB.Scan"), 0);

    // (d) Listing runs: one Query page.
    let d = &report.case("list_runs").counts;
    assert_eq!(d.op("DynamoDB.Query"), 1, "{}", report.table());
    assert!(d.scanned() <= 100, "listing runs read {}", d.scanned());
    assert_eq!(d.op("DynamoDB.Scan"), 0);

    // (e) The sweep: no Scan, reads in proportion to the 10 due grants.
    let e = &report.case("grant_sweep").counts;
    let due = DUE_GRANTS as u64;
    assert_eq!(e.op("DynamoDB.Scan"), 0);
    assert!(e.scanned() <= due, "the sweep read {} index records for {due} due grants", e.scanned());
    assert!(e.service("DynamoDB") <= 6 * due + 2, "{}", report.table());
    assert!(e.op("SecretsManager.GetSecretValue") <= due, "{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cost_counts_at_2000() {
    let report = cost::run(N).await;
    eprintln!("{}", report.table());
    check(&report);
}
