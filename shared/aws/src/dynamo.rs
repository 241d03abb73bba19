//! All state stores on one DynamoDB table (ARCHITECTURE §8).
//!
//! Keys: connections `CLIENT#c / CONN#id`, grants `CLIENT#c / GRANT#id`, uniqueness markers
//! `CLIENT#c / FOLDER#provider#digest` and `CLIENT#c / ACCOUNT#provider#digest`, items
//! `CLIENT#c#CONN#id / ITEM#provider-id`, runs `CLIENT#c#CONN#id / RUN#id` (TTL 90 days),
//! oauth states `STATE#digest / STATE` (TTL), audit `CLIENT#c / AUDIT#ms#id`.
//!
//! Each record is a JSON `doc` plus the attributes that conditions and atomic counters need:
//! `rev` (optimistic concurrency for doc updates), the lease (`lease_version`, `lease_holder`,
//! `lease_expires`), counters (`c_*` on connections, `r_*` on runs, updated with ADD so item
//! writes never race doc updates), the refresh lock on grants, and the index keys: `Due`
//! (`gsi1pk = DUE#shard`, `gsi1sk = next-due ms#id`, present only while a connection is due for
//! auto sync, `active` or `error`: a sparse index projecting only the keys and `due_every`, the
//! interval; the scheduler's claim moves `gsi1sk` and sets `due_claim`, the new next-due time,
//! and `due_claim_by`, the tick, in one conditional write without reading the record, and the
//! next doc write folds
//! `due_claim` into the doc), `ByPath` (`gsi2pk` = the item partition,
//! `gsi2sk` = the digest of the lower-cased path; only live items of providers that delete by
//! path), `ByParent`
//! (`gsi3pk` = the item partition + a digest of the parent id, `gsi3sk` = the provider id; only
//! live items: the children index of the scope tree) and `ByRetry` (`gsi4pk` = the item
//! partition, `gsi4sk` = the fixed-width `next_attempt_at` + `#` + the provider id; only
//! `failed` items: [`ItemStore::failed_due`] reads what it returns and nothing else) and `Sweep`
//! (`gsi5pk = SWEEP`, `gsi5sk` = the fixed-width creation ms, or 0 for a `revoking` grant, +
//! `#client#id`; only unattached or revoking grants: the hourly sweep reads the stale ones and
//! nothing else, with no Scan).
//! Every expression uses placeholders; no user text is ever spliced into one.
//!
//! A worker's writes to a connection or run doc are read-modify-writes guarded by `rev`. The
//! store remembers the doc and `rev` it last leased or wrote (`Docs`), so a step's writes apply
//! their patch to that copy and skip the read; a copy someone else changed meanwhile fails the
//! `rev` condition and the write is redone from a fresh read.
//!
//! An item record DynamoDB refuses as invalid (`ValidationException`: over 400 KB, a key over
//! its size limit) is [`StoreError::Rejected`]: that one record, not the store, is the problem.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, ConditionCheck, Delete, DeleteRequest,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType, Put, PutRequest,
    ScalarAttributeType, TransactWriteItem, Update, WriteRequest,
};
use extconn_core::ports::*;
use extconn_core::{
    AuditEvent, ClientId, ConnKey, Connection, ConnectionCounters, ConnectionId, ConnectionStatus, Fence,
    Grant, GrantId, GrantStatus, Item, ItemState, Lease, ProviderKind, RunCounters, RunId, SyncPosition,
    SyncRun, Timestamp,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

type Attrs = HashMap<String, Av>;

/// Shards of the `Due` index (spreads the scheduler's reads).
const SHARDS: u32 = 8;
const RUN_TTL_DAYS: i64 = 90;
const CAS_RETRIES: usize = 20;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    docs: std::sync::Arc<std::sync::Mutex<Docs>>,
}

/// Most docs remembered; past it the memory starts afresh (a forgotten doc costs one read).
const DOCS_MAX: usize = 1024;

/// The connection and run docs (with their `rev`) this process last leased or wrote: what a
/// worker's next write of the same record starts from instead of a read. Never trusted beyond
/// the `rev` condition of the write that uses it.
#[derive(Debug, Default)]
struct Docs {
    conns: HashMap<ConnKey, (Connection, i64)>,
    runs: HashMap<(ConnKey, RunId), (SyncRun, i64)>,
}

/// A connection doc rewrite (expression, condition, values), for an UpdateItem or a
/// transaction's Update.
struct DocWrite {
    expr: String,
    cond: String,
    values: Attrs,
}

fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}
fn n(v: impl ToString) -> Av {
    Av::N(v.to_string())
}
fn digest(v: &str) -> String {
    hex::encode(&Sha256::digest(v.as_bytes())[..16])
}
fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn err<E: std::error::Error + 'static>(e: SdkError<E>) -> StoreError {
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
}

/// True for a failed condition (plain or inside a transaction's first cancellation reason).
fn condition_failed<E>(e: &SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code()).is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// A conditional write's result: `Ok(())` on success, `on_condition` when its condition
/// failed, unavailable on anything else.
fn conditional<O, E>(
    r: Result<O, SdkError<E>>,
    on_condition: Result<(), StoreError>,
) -> Result<(), StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match r {
        Ok(_) => Ok(()),
        Err(e) if condition_failed(&e) => on_condition,
        Err(e) => Err(err(e)),
    }
}

/// Which transaction items failed their condition.
fn cancelled_conditions(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>,
) -> Option<Vec<bool>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as T;
    match e.as_service_error() {
        Some(T::TransactionCanceledException(c)) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code().is_some_and(|c| c == "ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

fn doc<T: Serialize>(v: &T) -> Result<Av, StoreError> {
    serde_json::to_string(v).map(Av::S).map_err(|e| StoreError::Unavailable(e.to_string()))
}
fn parse<T: DeserializeOwned>(a: &Attrs) -> Result<T, StoreError> {
    let raw = a
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Unavailable("record without doc".into()))?;
    serde_json::from_str(raw).map_err(|e| StoreError::Unavailable(format!("corrupt record: {e}")))
}
fn num(a: &Attrs, k: &str) -> i64 {
    a.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}
fn text<'a>(a: &'a Attrs, k: &str) -> Option<&'a str> {
    a.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn conn_pk(c: &ClientId) -> String {
    format!("CLIENT#{c}")
}
fn conn_sk(key: &ConnKey) -> String {
    format!("CONN#{}", key.connection_id)
}
fn child_pk(key: &ConnKey) -> String {
    format!("CLIENT#{}#CONN#{}", key.client_id, key.connection_id)
}
fn folder_marker(c: &Connection) -> String {
    format!(
        "FOLDER#{}#{}",
        c.provider,
        digest(&format!("{}|{}", c.folder.folder_id, c.folder.drive_id.as_deref().unwrap_or("")))
    )
}
fn account_marker(provider: ProviderKind, account: &str) -> String {
    format!("ACCOUNT#{provider}#{}", digest(account))
}
fn shard(key: &ConnKey) -> u32 {
    let d = Sha256::digest(key.connection_id.as_str().as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % SHARDS
}
fn due_sk(at: Timestamp, key: &ConnKey) -> String {
    format!("{:020}#{}", ms(at).max(0), key.connection_id)
}

/// A fixed-width, lexically ordered encoding of a retry time at full precision (seconds, then
/// nanoseconds), so the `ByRetry` index orders exactly as [`ItemStore::failed_due`] promises.
/// Times before the epoch (and a failed item without a time) sort at the epoch.
fn retry_at(t: Option<Timestamp>) -> String {
    let t = t.unwrap_or_default();
    let (secs, nanos) = if t.timestamp() < 0 { (0, 0) } else { (t.timestamp(), t.timestamp_subsec_nanos()) };
    // A leap second's nanoseconds run past 999,999,999: clamped, so the width stays fixed.
    format!("{secs:020}.{:09}", nanos.min(999_999_999))
}

/// The `ByRetry` sort key of a failed item.
fn retry_sk(t: Option<Timestamp>, provider_id: &str) -> String {
    format!("{}#{provider_id}", retry_at(t))
}

/// A connection record from its attributes: the doc, with lease and counters taken from the
/// attributes that own them.
fn connection_from(a: &Attrs) -> Result<(Connection, i64), StoreError> {
    let mut c: Connection = parse(a)?;
    c.lease_version = u64::try_from(num(a, "lease_version")).unwrap_or(0);
    c.lease = match (text(a, "lease_holder"), a.get("lease_expires")) {
        (Some(h), Some(_)) => Some(Lease {
            holder: h.to_owned(),
            expires_at: chrono::DateTime::from_timestamp_millis(num(a, "lease_expires")).unwrap_or_default(),
        }),
        _ => None,
    };
    c.counters = ConnectionCounters {
        files: u64::try_from(num(a, "c_files")).unwrap_or(0),
        bytes: u64::try_from(num(a, "c_bytes")).unwrap_or(0),
        failed: u64::try_from(num(a, "c_failed")).unwrap_or(0),
    };
    // A scheduler's claim since the doc was last written (see `claim_due`).
    if a.contains_key("due_claim") {
        c.next_due_at = chrono::DateTime::from_timestamp_millis(num(a, "due_claim"));
    }
    Ok((c, num(a, "rev")))
}

fn run_from(a: &Attrs) -> Result<(SyncRun, i64), StoreError> {
    let mut r: SyncRun = parse(a)?;
    let g = |k| u64::try_from(num(a, k)).unwrap_or(0);
    r.counters = RunCounters {
        scanned: g("r_scanned"),
        imported: g("r_imported"),
        updated: g("r_updated"),
        skipped: g("r_skipped"),
        failed: g("r_failed"),
        source_deleted: g("r_source_deleted"),
        bytes: g("r_bytes"),
    };
    Ok((r, num(a, "rev")))
}

/// Whether a grant belongs in the `Sweep` index: while it is unattached (stale an hour after
/// its creation) or being revoked (due at once, at time 0).
fn sweep_keys(g: &Grant) -> Option<(String, String)> {
    let at = match (g.status, g.attached) {
        (GrantStatus::Revoking, _) => 0,
        (_, false) => ms(g.created_at).max(0),
        (_, true) => return None,
    };
    Some(("SWEEP".to_owned(), format!("{at:020}#{}#{}", g.client_id, g.id)))
}

/// Whether a connection belongs in the `Due` index.
fn due_keys(c: &Connection) -> Option<(String, String)> {
    match (c.auto_sync, c.status, c.next_due_at) {
        // An `error` connection stays due: the next tick tries again.
        (true, ConnectionStatus::Active | ConnectionStatus::Error, Some(at)) => {
            let key = c.key();
            Some((format!("DUE#{}", shard(&key)), due_sk(at, &key)))
        }
        _ => None,
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), docs: Default::default() }
    }

    /// Creates the table with the layout above (tests and local tooling; production uses the
    /// SAM template).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute")
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder().attribute_name(name).key_type(t).build().expect("key")
        };
        let gsi = |name: &str, pk: &str, sk: &str| {
            // The scheduler reads keys and the interval from `Due`; the stores read whole
            // records from the others.
            let projection = if name == "Due" {
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .non_key_attributes("due_every")
                    .build()
            } else {
                Projection::builder().projection_type(ProjectionType::All).build()
            };
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash))
                .key_schema(key(sk, KeyType::Range))
                .projection(projection)
                .build()
                .expect("gsi")
        };
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .attribute_definitions(attr("gsi1pk"))
            .attribute_definitions(attr("gsi1sk"))
            .attribute_definitions(attr("gsi2pk"))
            .attribute_definitions(attr("gsi2sk"))
            .attribute_definitions(attr("gsi3pk"))
            .attribute_definitions(attr("gsi3sk"))
            .attribute_definitions(attr("gsi4pk"))
            .attribute_definitions(attr("gsi4sk"))
            .attribute_definitions(attr("gsi5pk"))
            .attribute_definitions(attr("gsi5sk"))
            .attribute_definitions(attr("gsi6pk"))
            .attribute_definitions(attr("gsi6sk"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .global_secondary_indexes(gsi("Due", "gsi1pk", "gsi1sk"))
            .global_secondary_indexes(gsi("ByPath", "gsi2pk", "gsi2sk"))
            .global_secondary_indexes(gsi("ByParent", "gsi3pk", "gsi3sk"))
            .global_secondary_indexes(gsi("ByRetry", "gsi4pk", "gsi4sk"))
            .global_secondary_indexes(gsi("Sweep", "gsi5pk", "gsi5sk"))
            .global_secondary_indexes(gsi("ByState", "gsi6pk", "gsi6sk"))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Deletes up to 25 records by key in one BatchWriteItem; unprocessed deletes (throttling)
    /// are sent again, a bounded number of times with a growing pause.
    async fn delete_keys(&self, keys: &[Attrs]) -> Result<(), StoreError> {
        let mut requests: Vec<WriteRequest> = keys
            .iter()
            .map(|k| {
                let del = DeleteRequest::builder().set_key(Some(k.clone())).build().expect("key");
                WriteRequest::builder().delete_request(del).build()
            })
            .collect();
        for attempt in 0..8u32 {
            if requests.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(err)?;
            requests = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
        }
        if requests.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Unavailable("deletes left unprocessed after 8 attempts".into()))
        }
    }

    async fn get_raw(&self, pk: String, sk: String) -> Result<Option<Attrs>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?;
        Ok(out.item)
    }

    /// Every record of a partition whose sort key starts with `prefix`.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Attrs>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":p", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(err)?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    async fn get_connection(&self, key: &ConnKey) -> Result<Option<(Connection, i64)>, StoreError> {
        self.get_raw(conn_pk(&key.client_id), conn_sk(key)).await?.map(|a| connection_from(&a)).transpose()
    }

    fn docs(&self) -> std::sync::MutexGuard<'_, Docs> {
        // Only a cache: a panic while it was held leaves nothing to repair.
        self.docs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn held_conn(&self, key: &ConnKey) -> Option<(Connection, i64)> {
        self.docs().conns.get(key).cloned()
    }

    fn remember_conn(&self, c: &Connection, rev: i64) {
        let mut d = self.docs();
        if d.conns.len() >= DOCS_MAX {
            d.conns.clear();
        }
        d.conns.insert(c.key(), (c.clone(), rev));
    }

    fn forget_conn(&self, key: &ConnKey) {
        self.docs().conns.remove(key);
    }

    fn held_run(&self, conn: &ConnKey, id: &RunId) -> Option<(SyncRun, i64)> {
        self.docs().runs.get(&(conn.clone(), id.clone())).cloned()
    }

    fn remember_run(&self, run: &SyncRun, rev: i64) {
        let mut d = self.docs();
        if d.runs.len() >= DOCS_MAX {
            d.runs.clear();
        }
        d.runs.insert((run.conn.clone(), run.id.clone()), (run.clone(), rev));
    }

    /// The connection under `fence`: with `remembered`, the remembered doc if there is one
    /// (whether it is still current, and still ours, the write's conditions tell), else a read.
    /// Fenced when absent or no longer ours.
    async fn fenced_conn(&self, fence: &Fence, remembered: bool) -> Result<(Connection, i64), StoreError> {
        if remembered && let Some(held) = self.held_conn(&fence.conn) {
            return Ok(held);
        }
        let Some((c, rev)) = self.get_connection(&fence.conn).await? else {
            return Err(StoreError::Fenced);
        };
        if c.lease_version != fence.version || c.lease.as_ref().is_none_or(|l| l.holder != fence.holder) {
            self.forget_conn(&fence.conn);
            return Err(StoreError::Fenced);
        }
        Ok((c, rev))
    }

    /// The run: remembered, else read (NotFound when absent).
    async fn run_doc(
        &self,
        conn: &ConnKey,
        id: &RunId,
        remembered: bool,
    ) -> Result<(SyncRun, i64), StoreError> {
        if remembered && let Some(held) = self.held_run(conn, id) {
            return Ok(held);
        }
        let a = self.get_raw(child_pk(conn), format!("RUN#{id}")).await?.ok_or(StoreError::NotFound)?;
        run_from(&a)
    }

    /// The doc (and index keys) of a connection, to be written only if `rev` is unchanged and,
    /// for a fenced write, the lease is still the fence's; `release` ends the lease.
    fn connection_write(
        c: &Connection,
        rev: i64,
        fence: Option<&Fence>,
        release: bool,
    ) -> Result<DocWrite, StoreError> {
        let mut set = vec!["doc = :doc", "rev = :new"];
        let mut remove: Vec<&str> = Vec::new();
        let mut cond = "rev = :rev".to_owned();
        let mut values: Attrs = HashMap::from([
            (":doc".to_owned(), doc(c)?),
            (":new".to_owned(), n(rev + 1)),
            (":rev".to_owned(), n(rev)),
        ]);
        // The doc now holds next_due_at (read with any claim folded in: `rev` guards it).
        remove.push("due_claim");
        match due_keys(c) {
            Some((pk, sk)) => {
                set.extend(["gsi1pk = :g1", "gsi1sk = :g2", "due_every = :ge"]);
                values.insert(":g1".into(), s(pk));
                values.insert(":g2".into(), s(sk));
                values.insert(":ge".into(), n(c.sync_interval_secs));
            }
            None => remove.extend(["gsi1pk", "gsi1sk", "due_every"]),
        }
        if let Some(f) = fence {
            cond.push_str(" AND lease_version = :lv AND lease_holder = :lh");
            values.insert(":lv".into(), n(f.version));
            values.insert(":lh".into(), s(f.holder.clone()));
        }
        if release {
            remove.extend(["lease_holder", "lease_expires"]);
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        Ok(DocWrite { expr, cond, values })
    }

    /// [`Self::connection_write`] as one UpdateItem. `Ok(false)`: a condition failed (the rev
    /// moved, or the lease is not the fence's).
    async fn write_connection(
        &self,
        c: &Connection,
        rev: i64,
        fence: Option<&Fence>,
        release: bool,
    ) -> Result<bool, StoreError> {
        let w = Self::connection_write(c, rev, fence, release)?;
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(&c.client_id)))
            .key("sk", s(conn_sk(&c.key())))
            .update_expression(w.expr)
            .condition_expression(w.cond)
            .set_expression_attribute_values(Some(w.values))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    /// [`Self::connection_write`] as a transaction's Update.
    fn connection_update(
        &self,
        c: &Connection,
        rev: i64,
        fence: &Fence,
        release: bool,
    ) -> Result<Update, StoreError> {
        let w = Self::connection_write(c, rev, Some(fence), release)?;
        Ok(Update::builder()
            .table_name(&self.table)
            .key("pk", s(conn_pk(&c.client_id)))
            .key("sk", s(conn_sk(&c.key())))
            .update_expression(w.expr)
            .condition_expression(w.cond)
            .set_expression_attribute_values(Some(w.values))
            .build()
            .expect("update"))
    }

    /// A run doc rewrite guarded by `rev`, as a transaction's Update.
    fn run_update(&self, run: &SyncRun, rev: i64) -> Result<Update, StoreError> {
        Ok(Update::builder()
            .table_name(&self.table)
            .key("pk", s(child_pk(&run.conn)))
            .key("sk", s(format!("RUN#{}", run.id)))
            .update_expression("SET doc = :doc, rev = :new")
            .condition_expression("rev = :rev")
            .expression_attribute_values(":doc", doc(run)?)
            .expression_attribute_values(":new", n(rev + 1))
            .expression_attribute_values(":rev", n(rev))
            .build()
            .expect("update"))
    }

    /// Read-modify-write of a connection's doc under its lease (checkpoint, release).
    /// Starts from the remembered doc when there is one (no read).
    async fn fenced_update(
        &self,
        fence: &Fence,
        patch: &ConnectionPatch,
        position: Option<&SyncPosition>,
        release: bool,
    ) -> Result<(), StoreError> {
        for attempt in 0..CAS_RETRIES {
            let (mut c, rev) = self.fenced_conn(fence, attempt == 0).await?;
            // The position first, then the patch (as the memory store: a patch's own
            // position wins).
            if let Some(p) = position {
                c.position = p.clone();
            }
            patch.apply_to(&mut c);
            if self.write_connection(&c, rev, Some(fence), release).await? {
                if release {
                    self.forget_conn(&fence.conn);
                } else {
                    self.remember_conn(&c, rev + 1);
                }
                return Ok(());
            }
        }
        Err(StoreError::Unavailable("too much contention on the connection record".into()))
    }

    fn fence_check(&self, fence: &Fence) -> ConditionCheck {
        ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(conn_pk(&fence.conn.client_id)))
            .key("sk", s(conn_sk(&fence.conn)))
            .condition_expression("lease_version = :lv AND lease_holder = :lh")
            .expression_attribute_values(":lv", n(fence.version))
            .expression_attribute_values(":lh", s(fence.holder.clone()))
            .build()
            .expect("condition check")
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn create(&self, c: &Connection) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(connection_record(c)?))
            .condition_expression("attribute_not_exists(pk)");
        let marker = Put::builder()
            .table_name(&self.table)
            .item("pk", s(conn_pk(&c.client_id)))
            .item("sk", s(folder_marker(c)))
            .item("connection", s(c.id.to_string()))
            .condition_expression("attribute_not_exists(pk)");
        let r = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put.build().expect("put")).build())
            .transact_items(TransactWriteItem::builder().put(marker.build().expect("put")).build())
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if cancelled_conditions(&e).is_some_and(|v| v.iter().any(|x| *x)) => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn get(&self, key: &ConnKey) -> Result<Option<Connection>, StoreError> {
        Ok(self.get_connection(key).await?.map(|(c, _)| c))
    }

    async fn list(
        &self,
        client: &ClientId,
        provider: Option<ProviderKind>,
    ) -> Result<Vec<Connection>, StoreError> {
        let mut v = Vec::new();
        for a in self.query_prefix(conn_pk(client), "CONN#").await? {
            let (c, _) = connection_from(&a)?;
            if provider.is_none_or(|p| p == c.provider) {
                v.push(c);
            }
        }
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    async fn list_by_grant(&self, client: &ClientId, grant: &GrantId) -> Result<Vec<Connection>, StoreError> {
        Ok(ConnectionStore::list(self, client, None)
            .await?
            .into_iter()
            .filter(|c| &c.grant_id == grant)
            .collect())
    }

    async fn update(&self, key: &ConnKey, patch: &ConnectionPatch) -> Result<Connection, StoreError> {
        for _ in 0..CAS_RETRIES {
            let Some((mut c, rev)) = self.get_connection(key).await? else {
                return Err(StoreError::NotFound);
            };
            if !patch.condition_holds(&c) {
                return Err(StoreError::Conflict);
            }
            patch.apply_to(&mut c);
            if self.write_connection(&c, rev, None, false).await? {
                return Ok(c);
            }
        }
        Err(StoreError::Unavailable("too much contention on the connection record".into()))
    }

    async fn delete(&self, key: &ConnKey) -> Result<bool, StoreError> {
        let Some((c, _)) = self.get_connection(key).await? else { return Ok(false) };
        let del = |sk: String| {
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .key("pk", s(conn_pk(&key.client_id)))
                        .key("sk", s(sk))
                        .build()
                        .expect("delete"),
                )
                .build()
        };
        self.client
            .transact_write_items()
            .transact_items(del(conn_sk(key)))
            .transact_items(del(folder_marker(&c)))
            .send()
            .await
            .map_err(err)?;
        Ok(true)
    }

    /// One conditional UpdateItem returning the record as leased: taken when no lease is
    /// held or the held one has expired.
    async fn acquire_lease(
        &self,
        key: &ConnKey,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Option<(Fence, Connection)>, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(&key.client_id)))
            .key("sk", s(conn_sk(key)))
            .update_expression(
                "SET lease_version = if_not_exists(lease_version, :zero) + :one, lease_holder = :h, lease_expires = :exp",
            )
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(lease_holder) OR attribute_not_exists(lease_expires) OR lease_expires <= :now)",
            )
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":exp", n(ms(expires)))
            .expression_attribute_values(":now", n(ms(now)))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => {
                let attrs =
                    out.attributes.ok_or_else(|| StoreError::Unavailable("lease without record".into()))?;
                let (c, rev) = connection_from(&attrs)?;
                self.remember_conn(&c, rev);
                let fence = Fence { conn: key.clone(), version: c.lease_version, holder: holder.to_owned() };
                Ok(Some((fence, c)))
            }
            Err(e) if condition_failed(&e) => {
                // Held by someone else, or no such connection: the failure carries the record
                // when there is one (read it where the store does not return it).
                let returned = matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(x)) if x.item().is_some()
                );
                if returned || self.get_raw(conn_pk(&key.client_id), conn_sk(key)).await?.is_some() {
                    Ok(None)
                } else {
                    Err(StoreError::NotFound)
                }
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn renew_lease(&self, fence: &Fence, now: Timestamp, ttl: Duration) -> Result<(), StoreError> {
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(&fence.conn.client_id)))
            .key("sk", s(conn_sk(&fence.conn)))
            .update_expression("SET lease_expires = :exp")
            .condition_expression("lease_version = :lv AND lease_holder = :lh")
            .expression_attribute_values(":exp", n(ms(expires)))
            .expression_attribute_values(":lv", n(fence.version))
            .expression_attribute_values(":lh", s(fence.holder.clone()))
            .send()
            .await;
        conditional(r, Err(StoreError::Fenced))
    }

    async fn release_lease(&self, fence: &Fence, patch: &ConnectionPatch) -> Result<(), StoreError> {
        self.fenced_update(fence, patch, None, true).await
    }

    async fn checkpoint(
        &self,
        fence: &Fence,
        position: &SyncPosition,
        patch: &ConnectionPatch,
    ) -> Result<(), StoreError> {
        self.fenced_update(fence, patch, Some(position), false).await
    }

    fn due_shards(&self) -> u32 {
        SHARDS
    }

    /// One Query page of the shard's part of `Due` (keys and `due_every` only).
    async fn due(
        &self,
        shard: u32,
        now: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DuePage, StoreError> {
        if limit == 0 {
            return Ok(DuePage::default());
        }
        let gpk = format!("DUE#{shard}");
        let upto = format!("{:020}~", ms(now).max(0));
        // The cursor is the last record's table key and index sort key.
        let start = match after {
            None => None,
            Some(a) => {
                let mut parts = a.splitn(3, '\n');
                let (Some(g2), Some(pk), Some(sk)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(StoreError::Unavailable("a malformed due cursor".into()));
                };
                Some(HashMap::from([
                    ("gsi1pk".to_owned(), s(gpk.clone())),
                    ("gsi1sk".to_owned(), s(g2)),
                    ("pk".to_owned(), s(pk)),
                    ("sk".to_owned(), s(sk)),
                ]))
            }
        };
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("Due")
            .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :upto")
            .expression_attribute_values(":pk", s(gpk))
            .expression_attribute_values(":upto", s(upto))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(err)?;
        let mut due = Vec::new();
        for a in page.items.unwrap_or_default() {
            let key = text(&a, "pk")
                .and_then(|p| p.strip_prefix("CLIENT#"))
                .and_then(|c| ClientId::parse(c).ok())
                .zip(
                    text(&a, "sk")
                        .and_then(|k| k.strip_prefix("CONN#"))
                        .and_then(|i| ConnectionId::parse(i).ok()),
                )
                .map(|(client_id, connection_id)| ConnKey { client_id, connection_id });
            let at = text(&a, "gsi1sk")
                .and_then(|g| g.split('#').next())
                .and_then(|m| m.parse::<i64>().ok())
                .and_then(chrono::DateTime::from_timestamp_millis);
            match (key, at) {
                (Some(key), Some(due_at)) => due.push(DueRef {
                    key,
                    due_at,
                    every_secs: u64::try_from(num(&a, "due_every")).unwrap_or(0),
                }),
                _ => tracing::warn!("a Due index record without a connection key or due time: skipped"),
            }
        }
        let next = page.last_evaluated_key.map(|k| {
            let t = |n: &str| k.get(n).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            format!("{}\n{}\n{}", t("gsi1sk"), t("pk"), t("sk"))
        });
        Ok(DuePage { due, next })
    }

    /// One conditional write, no read: still in the index at `expected` (so still auto-sync and
    /// `active` or `error`) → moved to `next`, with `due_claim` for the doc, `due_claim_by` the
    /// tick, and `rev` bumped so a doc write based on an earlier read retries. A refused claim
    /// carries the record (no read): at `next` by this tick, it is this tick's own claim whose
    /// answer was lost and the SDK retried.
    async fn claim_due(
        &self,
        key: &ConnKey,
        expected: Timestamp,
        next: Timestamp,
        tick: &str,
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
        let next_sk = due_sk(next, key);
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(&key.client_id)))
            .key("sk", s(conn_sk(key)))
            .update_expression("SET gsi1sk = :next, due_claim = :ms, due_claim_by = :tick ADD rev :one")
            .condition_expression("gsi1sk = :expected")
            .expression_attribute_values(":expected", s(due_sk(expected, key)))
            .expression_attribute_values(":next", s(next_sk.clone()))
            .expression_attribute_values(":ms", n(ms(next)))
            .expression_attribute_values(":tick", s(tick))
            .expression_attribute_values(":one", n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => {
                let mine = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(x)) => x.item().is_some_and(|a| {
                        text(a, "gsi1sk") == Some(next_sk.as_str()) && text(a, "due_claim_by") == Some(tick)
                    }),
                    _ => false,
                };
                Ok(mine)
            }
            Err(e) => Err(err(e)),
        }
    }
}

/// The attributes [`ConnectionStore::create`] writes for a new connection (without its folder
/// marker). Public so that tests and tooling can bulk-load connections with exactly the layout
/// the store reads.
pub fn connection_record(c: &Connection) -> Result<HashMap<String, Av>, StoreError> {
    let mut a = HashMap::from([
        ("pk".to_owned(), s(conn_pk(&c.client_id))),
        ("sk".to_owned(), s(conn_sk(&c.key()))),
        ("doc".to_owned(), doc(c)?),
        ("rev".to_owned(), n(0)),
        ("lease_version".to_owned(), n(c.lease_version)),
        ("c_files".to_owned(), n(c.counters.files)),
        ("c_bytes".to_owned(), n(c.counters.bytes)),
        ("c_failed".to_owned(), n(c.counters.failed)),
    ]);
    if let Some((g1, g2)) = due_keys(c) {
        a.insert("gsi1pk".into(), s(g1));
        a.insert("gsi1sk".into(), s(g2));
        a.insert("due_every".into(), n(c.sync_interval_secs));
    }
    Ok(a)
}

/// The attributes [`GrantStore::create`] writes for a grant (without its account marker), for
/// tests and tooling that bulk-load grants (the cost bench, which checks that a grant the store
/// created reads back exactly as this).
pub fn grant_record(g: &Grant) -> Result<HashMap<String, Av>, StoreError> {
    let mut a = HashMap::from([
        ("pk".to_owned(), s(conn_pk(&g.client_id))),
        ("sk".to_owned(), s(format!("GRANT#{}", g.id))),
        ("doc".to_owned(), doc(g)?),
        ("status".to_owned(), doc(&g.status)?),
        ("attached".to_owned(), Av::Bool(g.attached)),
        ("created_ms".to_owned(), n(ms(g.created_at))),
    ]);
    if let Some((pk, sk)) = sweep_keys(g) {
        a.insert("gsi5pk".into(), s(pk));
        a.insert("gsi5sk".into(), s(sk));
    }
    Ok(a)
}

/// Writes `records` (built by the `*_record` functions) with BatchWriteItem, 25 a request and 4
/// requests at once, sending unprocessed ones again until none is left. For tests and tooling
/// that load a table in bulk; the stores never write this way.
pub async fn bulk_load(client: &Client, table: &str, records: Vec<Attrs>) -> Result<(), StoreError> {
    use futures::StreamExt;
    let batches: Vec<Vec<WriteRequest>> = records
        .chunks(25)
        .map(|c| {
            c.iter()
                .map(|r| {
                    let put = PutRequest::builder().set_item(Some(r.clone())).build().expect("item");
                    WriteRequest::builder().put_request(put).build()
                })
                .collect()
        })
        .collect();
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(batches)
        .map(|mut batch| async move {
            while !batch.is_empty() {
                let out = client.batch_write_item().request_items(table, batch).send().await.map_err(err)?;
                batch = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
            }
            Ok(())
        })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect()
}

fn item_key(key: &ConnKey, provider_id: &str) -> (String, String) {
    (child_pk(key), format!("ITEM#{provider_id}"))
}

/// The attributes [`ItemStore::record`] writes for `item` of connection `conn`: its key, its
/// doc and the keys of the (sparse) indexes it belongs to. Public so that tests and tooling
/// can bulk-load items with exactly the layout the store reads.
pub fn item_record(conn: &ConnKey, item: &Item) -> Result<HashMap<String, Av>, StoreError> {
    let (pk, sk) = item_key(conn, &item.provider_id);
    let mut a = HashMap::from([
        ("pk".to_owned(), s(pk.clone())),
        ("sk".to_owned(), s(sk)),
        ("doc".to_owned(), doc(item)?),
    ]);
    // The indexes are sparse: a source-deleted item leaves the path and children indexes, and
    // only failed items are in the retry index.
    if item.is_live() {
        if let Some(k) = &item.path_key {
            a.insert("gsi2pk".into(), s(pk.clone()));
            a.insert("gsi2sk".into(), s(k.clone()));
        }
        if let Some(parent) = &item.parent_id {
            a.insert("gsi3pk".into(), s(parent_pk(conn, parent)));
            a.insert("gsi3sk".into(), s(item.provider_id.clone()));
        }
    }
    if item.state == ItemState::Failed {
        a.insert("gsi4pk".into(), s(pk.clone()));
        a.insert("gsi4sk".into(), s(retry_sk(item.next_attempt_at, &item.provider_id)));
    }
    // Files not imported (skipped, failed, deleted at the source) are few beside the imported
    // ones: the details view lists them from this index without reading the partition.
    if item.state != ItemState::Imported {
        a.insert("gsi6pk".into(), s(state_pk(conn, item.state)));
        a.insert("gsi6sk".into(), s(item.provider_id.clone()));
    }
    Ok(a)
}

/// The `ByState` partition of a connection's items in `state` (never `imported`).
fn state_pk(conn: &ConnKey, state: ItemState) -> String {
    let tag = match state {
        ItemState::Imported => "imported",
        ItemState::Skipped => "skipped",
        ItemState::Failed => "failed",
        ItemState::SourceDeleted => "source_deleted",
    };
    format!("{}#STATE#{tag}", child_pk(conn))
}

/// The children index partition of one folder (a digest: provider ids have no length bound).
fn parent_pk(key: &ConnKey, parent_id: &str) -> String {
    format!("{}#PARENT#{}", child_pk(key), digest(parent_id))
}

#[async_trait]
impl ItemStore for DynamoStore {
    async fn get(&self, conn: &ConnKey, provider_id: &str) -> Result<Option<Item>, StoreError> {
        let (pk, sk) = item_key(conn, provider_id);
        self.get_raw(pk, sk).await?.map(|a| parse(&a)).transpose()
    }

    /// BatchGetItem, 100 keys a request, strongly consistent; keys DynamoDB leaves
    /// unprocessed (throttling) are asked again after a short pause.
    async fn get_many(&self, conn: &ConnKey, ids: &[&str]) -> Result<Vec<Item>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let keys = chunk
                .iter()
                .map(|id| {
                    let (pk, sk) = item_key(conn, id);
                    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
                })
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            for attempt in 0u32.. {
                let page = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(err)?;
                for a in page.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    out.push(parse(&a)?);
                }
                match page.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys.is_empty() && attempt < 10 => {
                        tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
                        request = rest;
                    }
                    Some(rest) if !rest.keys.is_empty() => {
                        return Err(StoreError::Unavailable("BatchGetItem left keys unprocessed".into()));
                    }
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    /// Keys only: Query pages (of at most `limit` keys in all) and BatchWriteItem deletes of
    /// 25. A page cut short by the 1 MB read limit is followed, so fewer than `limit` really
    /// means nothing is left.
    async fn purge(&self, conn: &ConnKey, limit: usize) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut start = None;
        while removed < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(child_pk(conn)))
                .projection_expression("pk, sk")
                .limit(i32::try_from(limit - removed).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(err)?;
            let keys = page.items.unwrap_or_default();
            for chunk in keys.chunks(25) {
                self.delete_keys(chunk).await?;
            }
            removed += keys.len();
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(removed)
    }

    async fn by_path_key(&self, conn: &ConnKey, key: &str) -> Result<Vec<Item>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("ByPath")
            .key_condition_expression("gsi2pk = :pk AND gsi2sk = :k")
            .expression_attribute_values(":pk", s(child_pk(conn)))
            .expression_attribute_values(":k", s(key))
            .send()
            .await
            .map_err(err)?;
        // A path names at most a few live items (one, where the index is used): one page.
        page.items.unwrap_or_default().iter().map(parse).collect()
    }

    async fn children(
        &self,
        conn: &ConnKey,
        parent_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let gpk = parent_pk(conn, parent_id);
        let start = after.map(|a| {
            let (pk, sk) = item_key(conn, a);
            HashMap::from([
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s(sk)),
                ("gsi3pk".to_owned(), s(gpk.clone())),
                ("gsi3sk".to_owned(), s(a)),
            ])
        });
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("ByParent")
            .key_condition_expression("gsi3pk = :pk")
            .expression_attribute_values(":pk", s(gpk.clone()))
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(err)?;
        page.items.unwrap_or_default().iter().map(parse).collect()
    }

    /// Imported (or all) items: the item partition, `limit` at a time. Any other state: the
    /// sparse `ByState` index, which holds only the items in that state, so a listing of the
    /// few skipped or failed files of a large connection reads those and nothing else.
    async fn list(
        &self,
        conn: &ConnKey,
        state: Option<ItemState>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let by_state = state.filter(|s| *s != ItemState::Imported);
        let mut out = Vec::new();
        let mut start = after.map(|a| {
            let (pk, sk) = item_key(conn, a);
            let mut k = HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]);
            if let Some(st) = by_state {
                k.insert("gsi6pk".into(), s(state_pk(conn, st)));
                k.insert("gsi6sk".into(), s(a.to_owned()));
            }
            k
        });
        loop {
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let query =
                self.client.query().table_name(&self.table).limit(want).set_exclusive_start_key(start);
            let query = match by_state {
                // Index reads are eventually consistent: the state is checked again below.
                Some(st) => query
                    .index_name("ByState")
                    .key_condition_expression("gsi6pk = :pk")
                    .expression_attribute_values(":pk", s(state_pk(conn, st))),
                None => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                    .expression_attribute_values(":pk", s(child_pk(conn)))
                    .expression_attribute_values(":p", s("ITEM#"))
                    .consistent_read(true),
            };
            let page = query.send().await.map_err(err)?;
            for a in page.items.unwrap_or_default() {
                let i: Item = parse(&a)?;
                if state.is_none_or(|st| st == i.state) {
                    out.push(i);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// One Query of `ByRetry` between the cursor and `due_by` (more only when a 1 MB page ends
    /// early): it reads the failed items it returns and nothing else, whatever the size of the
    /// connection.
    async fn failed_due(
        &self,
        conn: &ConnKey,
        due_by: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let gpk = child_pk(conn);
        // '$' sorts right after '#': every provider id at `due_by` itself is in range.
        let hi = format!("{}$", retry_at(Some(due_by)));
        // From the cursor's own position, excluded by starting the query just after it.
        let lo = after.map_or_else(|| retry_at(None), |(t, id)| retry_sk(Some(t), id));
        if limit == 0 || lo > hi {
            return Ok(Vec::new());
        }
        let mut start = after.map(|(_, id)| {
            let (pk, sk) = item_key(conn, id);
            HashMap::from([
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s(sk)),
                ("gsi4pk".to_owned(), s(gpk.clone())),
                ("gsi4sk".to_owned(), s(lo.clone())),
            ])
        });
        let mut out = Vec::new();
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("ByRetry")
                .key_condition_expression("gsi4pk = :pk AND gsi4sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(gpk.clone()))
                .expression_attribute_values(":lo", s(lo.clone()))
                .expression_attribute_values(":hi", s(hi.clone()))
                .set_exclusive_start_key(start)
                .limit(i32::try_from(limit - out.len()).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(err)?;
            for a in page.items.unwrap_or_default() {
                out.push(parse(&a)?);
            }
            start = page.last_evaluated_key;
            if start.is_none() || out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
    }

    async fn record(&self, fence: &Fence, w: &ItemWrite) -> Result<(), StoreError> {
        let pk = child_pk(&fence.conn);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item_record(&fence.conn, &w.item)?))
            .build()
            .expect("put");
        let d = &w.run_delta;
        let run = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(format!("RUN#{}", w.run_id)))
            .update_expression("ADD r_scanned :a, r_imported :b, r_updated :c, r_skipped :d, r_failed :e, r_source_deleted :f, r_bytes :g")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":a", n(d.scanned))
            .expression_attribute_values(":b", n(d.imported))
            .expression_attribute_values(":c", n(d.updated))
            .expression_attribute_values(":d", n(d.skipped))
            .expression_attribute_values(":e", n(d.failed))
            .expression_attribute_values(":f", n(d.source_deleted))
            .expression_attribute_values(":g", n(d.bytes))
            .build()
            .expect("update");
        // The lease check rides on the counter update (one operation per item per transaction).
        let counters = Update::builder()
            .table_name(&self.table)
            .key("pk", s(conn_pk(&fence.conn.client_id)))
            .key("sk", s(conn_sk(&fence.conn)))
            .update_expression("ADD c_files :f, c_bytes :b, c_failed :x")
            .condition_expression("lease_version = :lv AND lease_holder = :lh")
            .expression_attribute_values(":f", n(w.conn_delta.files))
            .expression_attribute_values(":b", n(w.conn_delta.bytes))
            .expression_attribute_values(":x", n(w.conn_delta.failed))
            .expression_attribute_values(":lv", n(fence.version))
            .expression_attribute_values(":lh", s(fence.holder.clone()))
            .build()
            .expect("update");
        let r = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(counters).build())
            .transact_items(TransactWriteItem::builder().update(run).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => match cancelled_conditions(&e) {
                Some(v) if v.first() == Some(&true) => Err(StoreError::Fenced),
                Some(v) if v.get(1) == Some(&true) => Err(StoreError::NotFound),
                _ => match refused(&e) {
                    Some(why) => Err(StoreError::Rejected(why)),
                    None => Err(err(e)),
                },
            },
        }
    }
}

/// Why DynamoDB refused a transaction's record as invalid (`ValidationException`, or a
/// `ValidationError` cancellation reason: an item over 400 KB, a key over its size limit);
/// `None` for every other failure.
fn refused(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>,
) -> Option<String> {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as T;
    let service = e.as_service_error()?;
    if service.code() == Some("ValidationException") {
        return Some(service.message().unwrap_or("ValidationException").to_owned());
    }
    match service {
        T::TransactionCanceledException(c) => c
            .cancellation_reasons()
            .iter()
            .find(|r| r.code() == Some("ValidationError"))
            .map(|r| r.message().unwrap_or("ValidationError").to_owned()),
        _ => None,
    }
}

/// The attributes [`RunStore::create`] writes for a new run. Public so that tests and tooling
/// (the cost bench) can bulk-load runs with exactly the layout the store reads.
pub fn run_record(run: &SyncRun) -> Result<HashMap<String, Av>, StoreError> {
    let ttl = run.queued_at.timestamp() + RUN_TTL_DAYS * 86_400;
    let c = &run.counters;
    Ok(HashMap::from([
        ("pk".to_owned(), s(child_pk(&run.conn))),
        ("sk".to_owned(), s(format!("RUN#{}", run.id))),
        ("doc".to_owned(), doc(run)?),
        ("rev".to_owned(), n(0)),
        ("ttl".to_owned(), n(ttl)),
        ("r_scanned".to_owned(), n(c.scanned)),
        ("r_imported".to_owned(), n(c.imported)),
        ("r_updated".to_owned(), n(c.updated)),
        ("r_skipped".to_owned(), n(c.skipped)),
        ("r_failed".to_owned(), n(c.failed)),
        ("r_source_deleted".to_owned(), n(c.source_deleted)),
        ("r_bytes".to_owned(), n(c.bytes)),
    ]))
}

#[async_trait]
impl RunStore for DynamoStore {
    async fn create(&self, run: &SyncRun) -> Result<(), StoreError> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(run_record(run)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        conditional(r, Err(StoreError::Conflict))
    }

    async fn get(&self, conn: &ConnKey, id: &RunId) -> Result<Option<SyncRun>, StoreError> {
        let Some(a) = self.get_raw(child_pk(conn), format!("RUN#{id}")).await? else { return Ok(None) };
        let (run, rev) = run_from(&a)?;
        self.remember_run(&run, rev);
        Ok(Some(run))
    }

    /// One Query, newest first, reading `limit` runs (plus `before` itself): run ids sort by
    /// creation time, so the key order is the time order.
    async fn list(
        &self,
        conn: &ConnKey,
        before: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // `RUN$` is the first key after every `RUN#…`; BETWEEN is inclusive, so `before` itself
        // is read and dropped.
        let hi = before.map_or_else(|| "RUN$".to_owned(), |b| format!("RUN#{b}"));
        let want = limit + usize::from(before.is_some());
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(child_pk(conn)))
                .expression_attribute_values(":lo", s("RUN#"))
                .expression_attribute_values(":hi", s(hi.clone()))
                .scan_index_forward(false)
                .limit(i32::try_from(want - out.len()).unwrap_or(i32::MAX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(err)?;
            for a in page.items.unwrap_or_default() {
                let (run, _) = run_from(&a)?;
                if Some(&run.id) != before {
                    out.push(run);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() || out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
    }

    async fn update(
        &self,
        conn: &ConnKey,
        id: &RunId,
        patch: &RunPatch,
        fence: Option<&Fence>,
    ) -> Result<SyncRun, StoreError> {
        if fence.is_some_and(|f| &f.conn != conn) {
            return Err(StoreError::Fenced);
        }
        // The remembered doc first; a condition that fails on it is checked again on a read.
        let mut remembered = true;
        for _ in 0..CAS_RETRIES {
            let (mut run, rev) = self.run_doc(conn, id, std::mem::take(&mut remembered)).await?;
            if !patch.condition_holds(&run) {
                match self.run_doc(conn, id, false).await? {
                    (fresh, _) if !patch.condition_holds(&fresh) => return Err(StoreError::Conflict),
                    _ => continue,
                }
            }
            patch.apply_to(&mut run);
            let mut tx = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(self.run_update(&run, rev)?).build());
            if let Some(f) = fence {
                tx = tx.transact_items(
                    TransactWriteItem::builder().condition_check(self.fence_check(f)).build(),
                );
            }
            match tx.send().await {
                Ok(_) => {
                    self.remember_run(&run, rev + 1);
                    return Ok(run);
                }
                Err(e) => match cancelled_conditions(&e) {
                    Some(v) if v.get(1) == Some(&true) => return Err(StoreError::Fenced),
                    Some(v) if v.first() == Some(&true) => continue,
                    _ => return Err(err(e)),
                },
            }
        }
        Err(StoreError::Unavailable("too much contention on the run record".into()))
    }

    /// One transaction: the run's Put and the connection's doc with `current_run_id`.
    async fn start(&self, fence: &Fence, run: &SyncRun) -> Result<(), StoreError> {
        if run.conn != fence.conn {
            return Err(StoreError::Fenced);
        }
        for attempt in 0..CAS_RETRIES {
            let (mut c, rev) = self.fenced_conn(fence, attempt == 0).await?;
            c.current_run_id = Some(run.id.clone());
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(run_record(run)?))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .expect("put");
            let r = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .update(self.connection_update(&c, rev, fence, false)?)
                        .build(),
                )
                .send()
                .await;
            match r {
                Ok(_) => {
                    self.remember_conn(&c, rev + 1);
                    self.remember_run(run, 0);
                    return Ok(());
                }
                Err(e) => match cancelled_conditions(&e) {
                    Some(v) if v.first() == Some(&true) => return Err(StoreError::Conflict),
                    // The rev moved or the lease is gone: the next read tells which.
                    Some(v) if v.get(1) == Some(&true) => continue,
                    _ => return Err(err(e)),
                },
            }
        }
        Err(StoreError::Unavailable("too much contention on the connection record".into()))
    }

    /// One transaction: the run's doc and the connection's, the lease removed.
    async fn finish(
        &self,
        fence: &Fence,
        id: &RunId,
        patch: &RunPatch,
        release: &ConnectionPatch,
    ) -> Result<(), StoreError> {
        let (mut conn_remembered, mut run_remembered) = (true, true);
        for _ in 0..CAS_RETRIES {
            let (mut c, crev) = self.fenced_conn(fence, std::mem::take(&mut conn_remembered)).await?;
            let remembered = std::mem::take(&mut run_remembered);
            let (mut run, rrev) = self.run_doc(&fence.conn, id, remembered).await?;
            if !patch.condition_holds(&run) {
                if remembered {
                    conn_remembered = true;
                    continue;
                }
                return Err(StoreError::Conflict);
            }
            patch.apply_to(&mut run);
            release.apply_to(&mut c);
            let r = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(self.run_update(&run, rrev)?).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .update(self.connection_update(&c, crev, fence, true)?)
                        .build(),
                )
                .send()
                .await;
            match r {
                Ok(_) => {
                    self.forget_conn(&fence.conn);
                    self.remember_run(&run, rrev + 1);
                    return Ok(());
                }
                Err(e) => match cancelled_conditions(&e) {
                    Some(v) if v.iter().any(|x| *x) => {
                        // Whichever doc moved is read again; the other is still good.
                        conn_remembered = v.get(1) != Some(&true);
                        run_remembered = v.first() != Some(&true);
                    }
                    _ => return Err(err(e)),
                },
            }
        }
        Err(StoreError::Unavailable("too much contention on the run record".into()))
    }
}

#[async_trait]
impl OAuthStateStore for DynamoStore {
    async fn put(&self, key: &str, state: &OAuthState) -> Result<(), StoreError> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("STATE#{key}")))
            .item("sk", s("STATE"))
            .item("doc", doc(state)?)
            .item("ttl", n(state.expires_at.timestamp()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        conditional(r, Err(StoreError::Conflict))
    }

    /// One conditional delete returning the old item: of concurrent consumers exactly one
    /// gets it. (TTL deletion is lazy in DynamoDB; expiry is checked by the caller.)
    async fn consume(&self, key: &str) -> Result<Option<OAuthState>, StoreError> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("STATE#{key}")))
            .key("sk", s("STATE"))
            .condition_expression("attribute_exists(pk)")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => out.attributes.map(|a| parse(&a)).transpose(),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }
}

#[async_trait]
impl GrantStore for DynamoStore {
    async fn create(&self, g: &Grant) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(conn_pk(&g.client_id)))
            .item("sk", s(format!("GRANT#{}", g.id)))
            .item("doc", doc(g)?)
            .item("status", doc(&g.status)?)
            .item("attached", Av::Bool(g.attached))
            .item("created_ms", n(ms(g.created_at)))
            .condition_expression("attribute_not_exists(pk)");
        let put = match sweep_keys(g) {
            Some((pk, sk)) => put.item("gsi5pk", s(pk)).item("gsi5sk", s(sk)),
            None => put,
        }
        .build()
        .expect("put");
        let marker = Put::builder()
            .table_name(&self.table)
            .item("pk", s(conn_pk(&g.client_id)))
            .item("sk", s(account_marker(g.provider, &g.account_id)))
            .item("grant", s(g.id.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("put");
        let r = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if cancelled_conditions(&e).is_some_and(|v| v.iter().any(|x| *x)) => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn get(&self, client: &ClientId, id: &GrantId) -> Result<Option<Grant>, StoreError> {
        let Some(a) = self.get_raw(conn_pk(client), format!("GRANT#{id}")).await? else { return Ok(None) };
        let mut g: Grant = parse(&a)?;
        // The pause is its own attribute (written by `pause` alone, never by `update`'s doc).
        g.paused_until = a
            .contains_key("paused_ms")
            .then(|| chrono::DateTime::from_timestamp_millis(num(&a, "paused_ms")))
            .flatten();
        Ok(Some(g))
    }

    async fn find_by_account(
        &self,
        client: &ClientId,
        provider: ProviderKind,
        account_id: &str,
    ) -> Result<Option<Grant>, StoreError> {
        let Some(marker) = self.get_raw(conn_pk(client), account_marker(provider, account_id)).await? else {
            return Ok(None);
        };
        let Some(id) = text(&marker, "grant").and_then(|g| g.parse::<GrantId>().ok()) else {
            return Ok(None);
        };
        GrantStore::get(self, client, &id).await
    }

    async fn update(&self, g: &Grant) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(&g.client_id)))
            .key("sk", s(format!("GRANT#{}", g.id)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":doc", doc(g)?)
            .expression_attribute_values(":st", doc(&g.status)?)
            .expression_attribute_values(":at", Av::Bool(g.attached));
        let req = match sweep_keys(g) {
            Some((pk, sk)) => req
                .update_expression("SET doc = :doc, #st = :st, attached = :at, gsi5pk = :g5, gsi5sk = :g6")
                .expression_attribute_values(":g5", s(pk))
                .expression_attribute_values(":g6", s(sk)),
            None => req.update_expression("SET doc = :doc, #st = :st, attached = :at REMOVE gsi5pk, gsi5sk"),
        };
        conditional(req.send().await, Err(StoreError::NotFound))
    }

    async fn pause(&self, client: &ClientId, id: &GrantId, until: Timestamp) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(client)))
            .key("sk", s(format!("GRANT#{id}")))
            .update_expression("SET paused_ms = :u")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(paused_ms) OR paused_ms < :u)",
            )
            .expression_attribute_values(":u", n(ms(until)))
            .send()
            .await;
        // A refused condition: already paused as long or longer, or the grant is gone.
        conditional(r, Ok(()))
    }

    async fn delete(&self, client: &ClientId, id: &GrantId) -> Result<(), StoreError> {
        let Some(g) = GrantStore::get(self, client, id).await? else { return Ok(()) };
        for sk in [format!("GRANT#{id}"), account_marker(g.provider, &g.account_id)] {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(conn_pk(client)))
                .key("sk", s(sk))
                .send()
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    /// The `Sweep` index up to `unattached_before`: the revoking grants (at time 0), then the
    /// unattached ones oldest first. Reads only what it returns.
    async fn list_stale(&self, unattached_before: Timestamp, limit: usize) -> Result<Vec<Grant>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        while out.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("Sweep")
                .key_condition_expression("gsi5pk = :p AND gsi5sk < :before")
                .expression_attribute_values(":p", s("SWEEP"))
                .expression_attribute_values(":before", s(format!("{:020}", ms(unattached_before).max(0))))
                .limit(i32::try_from(limit - out.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(err)?;
            for a in page.items.unwrap_or_default() {
                out.push(parse(&a)?);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn try_lock_refresh(
        &self,
        client: &ClientId,
        id: &GrantId,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(client)))
            .key("sk", s(format!("GRANT#{id}")))
            .update_expression("SET lock_holder = :h, lock_expires = :exp")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(lock_expires) OR lock_expires <= :now OR lock_holder = :h)")
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":exp", n(ms(expires)))
            .expression_attribute_values(":now", n(ms(now)))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    async fn unlock_refresh(&self, client: &ClientId, id: &GrantId, holder: &str) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(conn_pk(client)))
            .key("sk", s(format!("GRANT#{id}")))
            .update_expression("REMOVE lock_holder, lock_expires")
            .condition_expression("lock_holder = :h")
            .expression_attribute_values(":h", s(holder))
            .send()
            .await;
        conditional(r, Ok(()))
    }
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record(&self, e: &AuditEvent) -> Result<(), StoreError> {
        let sk = format!("AUDIT#{:020}#{}", ms(e.at).max(0), RunId::generate());
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(conn_pk(&e.client_id)))
            .item("sk", s(sk))
            .item("doc", doc(e)?)
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn list(&self, client: &ClientId, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
            .expression_attribute_values(":pk", s(conn_pk(client)))
            .expression_attribute_values(":p", s("AUDIT#"))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(err)?;
        page.items.unwrap_or_default().iter().map(parse).collect()
    }
}
