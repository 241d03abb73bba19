//! Token lifecycle: single-flight refresh across concurrent syncs; invalid_grant → reauth.

use std::sync::Arc;

use extconn_core::engine::{JobOutcome, Skip};
use extconn_core::ports::{Clock, ConnectionStore, GrantStore, SystemClock, TokenVault};
use extconn_core::{ConnectionStatus, GrantStatus, RunStatus, Trigger};
use extconn_system_tests::{Ep, Fault, World, WorldOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_syncs_on_one_grant_refresh_once() {
    // Real time here: waiters poll while the holder's HTTP refresh is in flight.
    let w = World::new(WorldOptions { clock: Some(Arc::new(SystemClock)), ..Default::default() }).await;
    let mut conns = Vec::new();
    for i in 0..20 {
        let folder = w.dbx.add_folder(&w.account, &format!("/Shared {i}"));
        w.dbx.add_file(
            &w.account,
            &format!("/Shared {i}/a.txt"),
            extconn_sandbox::dropbox::Content::text("a"),
        );
        conns.push(w.connect(&folder.id, &format!("/Shared {i}")).await);
    }
    // The stored access token is expired (in the vault and at the sandbox).
    let current = w.vault.get(&w.grant.secret_ref).await.unwrap().unwrap();
    let mut expired = current.tokens.clone();
    expired.expires_at = Some(SystemClock.now() - chrono::Duration::minutes(1));
    w.vault.put(&w.grant.secret_ref, &expired, Some(current.version)).await.unwrap();
    w.dbx.expire_access_tokens();
    w.dbx.reset_counters();

    let engine = Arc::new(w.engine());
    let runs = conns.iter().map(|c| {
        let engine = engine.clone();
        let mut job = w.job(Trigger::Schedule);
        job.connection_id = c.connection_id.clone();
        let deadline = SystemClock.now() + chrono::Duration::minutes(15);
        tokio::spawn(async move { engine.run_job(&job, deadline).await })
    });
    for r in futures::future::join_all(runs).await {
        let out = r.unwrap().unwrap();
        assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    }
    assert_eq!(w.calls(Ep::Token), 1, "exactly one refresh for 20 concurrent syncs");
    assert_eq!(w.calls(Ep::Download), 20);
    w.assert_no_leaks(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_means_reauth_and_silence_for_ten_ticks() {
    let w = World::new(WorldOptions::default()).await;
    w.add("a.txt", "a");
    w.sync(Trigger::Initial).await;
    let second = w.dbx.add_folder(&w.account, "/Other");
    let other = w.connect(&second.id, "/Other").await;

    // The access token dies; the refresh token was revoked at the provider.
    w.dbx.expire_access_tokens();
    w.dbx.inject(Ep::Token, Fault::InvalidGrant, 1);
    w.add("b.txt", "b");
    let out = w.sync(Trigger::Schedule).await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::ReauthRequired, .. }), "{out:?}");
    let grant = GrantStore::get(w.store.as_ref(), &w.grant.client_id, &w.grant.id).await.unwrap().unwrap();
    assert_eq!(grant.status, GrantStatus::ReauthRequired);
    for key in [&w.conn, &other] {
        let c = ConnectionStore::get(w.store.as_ref(), key).await.unwrap().unwrap();
        assert_eq!(c.status, ConnectionStatus::ReauthRequired, "every connection of the grant");
    }

    // Ten scheduler ticks later: no job enqueued, and a stray job is a no-op.
    w.dbx.reset_counters();
    for _ in 0..10 {
        w.clock.advance(std::time::Duration::from_secs(900));
        let sent = extconn_core::scheduler::tick(&w.ports, w.clock.now()).await.unwrap();
        assert_eq!(sent, 0, "reauth_required connections are never due");
        assert_eq!(w.sync(Trigger::Schedule).await, JobOutcome::Skipped(Skip::ReauthRequired));
    }
    assert_eq!(w.provider_calls(), 0, "zero provider calls over ten ticks");
    w.assert_no_leaks(&[format!("{out:?}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_double_tick_enqueues_once() {
    let w = World::new(WorldOptions::default()).await;
    let now = w.clock.now();
    assert_eq!(extconn_core::scheduler::tick(&w.ports, now).await.unwrap(), 1);
    assert_eq!(extconn_core::scheduler::tick(&w.ports, now).await.unwrap(), 0, "same window: nothing twice");
    let (job, _) = w.queue.drain().remove(0);
    assert_eq!(job.trigger, Trigger::Schedule);
    ConnectionStore::update(
        w.store.as_ref(),
        &w.conn,
        &extconn_core::ports::ConnectionPatch { auto_sync: Some(false), ..Default::default() },
    )
    .await
    .unwrap();
    assert_eq!(
        w.engine().run_job(&job, w.deadline()).await.unwrap(),
        JobOutcome::Skipped(Skip::AutoSyncOff),
        "toggled off while queued"
    );
}

/// The provider refusing *our app* at refresh (`invalid_client`: a wrong client secret in the
/// deployment) is an operator's problem: the connection is `error` with the reason, an alarm
/// line is logged, and no grant or connection becomes `reauth_required`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_is_a_configuration_error_not_a_reauth() {
    let logs = extconn_system_tests::log_capture();
    let w =
        World::new(WorldOptions { connector_secret: Some("not-the-secret".into()), ..Default::default() })
            .await;
    w.add("a.txt", "a");
    w.dbx.expire_access_tokens();
    let out = w.sync(Trigger::Initial).await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Failed, .. }), "{out:?}");
    let grant = GrantStore::get(w.store.as_ref(), &w.grant.client_id, &w.grant.id).await.unwrap().unwrap();
    assert_eq!(grant.status, GrantStatus::Active);
    let c = ConnectionStore::get(w.store.as_ref(), &w.conn).await.unwrap().unwrap();
    assert_eq!(c.status, ConnectionStatus::Error);
    assert!(
        c.status_reason.as_deref().is_some_and(|r| r.contains("invalid_client")),
        "{:?}",
        c.status_reason
    );
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(logged.contains("provider_config"), "an alarm line is logged");
    w.assert_no_leaks(&[format!("{c:?}")]);
}

/// A worker process reads a grant's tokens once per token lifetime, not once per run; a token
/// the provider rejects is read again (and refreshed), never used twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reads_a_grants_tokens_once_until_they_are_rejected() {
    let w = World::new(WorldOptions::default()).await;
    let engine = Arc::new(w.engine());
    let run = |engine: Arc<extconn_core::engine::Engine>| {
        let job = w.job(Trigger::Manual);
        let deadline = w.ports.clock.now() + chrono::Duration::minutes(15);
        async move { engine.run_job(&job, deadline).await.unwrap() }
    };
    let before = w.vault.reads();
    for _ in 0..3 {
        let out = run(engine.clone()).await;
        assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    }
    assert_eq!(w.vault.reads() - before, 1, "three runs, one vault read");

    // The provider now refuses the access token: the next run reads the vault again, refreshes
    // once, and goes on with the new token.
    w.dbx.expire_access_tokens();
    w.dbx.reset_counters();
    let out = run(engine.clone()).await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    assert_eq!(w.calls(Ep::Token), 1, "one refresh");
    let reads = w.vault.reads();
    let out = run(engine.clone()).await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    assert_eq!(w.vault.reads(), reads, "the refreshed token is remembered");
}
