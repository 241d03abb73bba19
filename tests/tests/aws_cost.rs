//! The cost bench at 2,000 (`extconn_system_tests::cost`; `scripts/bench-cost` prints it at
//! 10,000): AWS requests asserted as counts, never times, through the Lambda handlers against
//! the AWS emulator. Fails, never skips, without the emulator.

use extconn_system_tests::cost::{self, DUE_GRANTS, Report};

const N: usize = 2_000;

/// DynamoDB page size of the scheduler's Due Query and the index's shards.
const DUE_PAGE: u64 = 100;
const SHARDS: u64 = 8;

fn check(report: &Report) {
    // (a) A no-change sync: at most 8 DynamoDB requests (7 today: the connection read before
    // the lease, the lease write that returns the record, the run started as the current run
    // in one transaction, the grant, the failed-items index Query reading nothing, the
    // listing's checkpoint, and the run finished with the lease released in one transaction),
    // one secret read, at most one page read, no Scan, no S3.
    let a = &report.case("no_change_sync").counts;
    assert!(
        a.service("DynamoDB") <= 8,
        "no-change sync: {} DynamoDB requests\n{}",
        a.service("DynamoDB"),
        report.table()
    );
    assert!(a.op("SecretsManager.GetSecretValue") <= 1, "{}", report.table());
    assert!(a.scanned() <= 100, "no-change sync read {} items by Query", a.scanned());
    assert_eq!(a.op("DynamoDB.Scan"), 0);
    assert_eq!(a.service("S3"), 0);

    // (b) New small files: 1 S3 PUT each and at most 2 DynamoDB requests each, plus a fixed
    // per-run overhead. A file costs the transaction that records it with the run's and the
    // connection's counters and, in a change listing, a path index Query for an item it
    // replaced at its path (Dropbox reports no deletion for a file replaced at a path) —
    // unless its folder held nothing when the step first looked (one children-index read per
    // folder), as a new folder does; a listing page's items are read with one BatchGetItem.
    // An initial import skips the path Query (its end-of-listing sweep finds replaced items):
    // about 1 a file, plus per page its BatchGetItem, checkpoint and transfer marks.
    let overhead = 20;
    for (name, per_file, per_page) in [("import_new_files", 2, false), ("initial_import", 1, true)] {
        let case = report.case(name);
        let (b, files) = (&case.counts, case.facts["files"]);
        let stored = files + case.facts.get("folders").copied().unwrap_or(0);
        let pages = if per_page { stored.div_ceil(50) } else { 0 };
        assert!(
            b.service("DynamoDB") <= per_file * stored + pages + overhead,
            "{name}: {} DynamoDB requests for {files} files\n{}",
            b.service("DynamoDB"),
            report.table()
        );
        assert!(b.op("DynamoDB.GetItem") <= 5, "{name}: items are read a page at a time\n{}", report.table());
        assert_eq!(b.op("S3.PutObject"), files, "{name}: one PutObject per small file");
        assert_eq!(b.op("S3.CreateMultipartUpload"), 0, "{name}");
        assert!(b.op("SecretsManager.GetSecretValue") <= 1, "{name}");
        assert_eq!(b.op("DynamoDB.Scan"), 0, "{name}");
    }
    // The initial import reads each stored item at most once by Query (its sweep; files,
    // folders, the root), plus a page for the failed-items index.
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
