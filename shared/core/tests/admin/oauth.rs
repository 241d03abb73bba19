//! The OAuth connect flow: start, complete, reconnect.

use std::time::Duration;

use extconn_core::oauth::Callback;
use extconn_core::ports::{ConnectionPatch, ConnectionStore, GrantStore, ProviderError};
use extconn_core::tokens::Tokens;
use extconn_core::{ConnectionStatus, GrantStatus, ProviderKind, Secret, Trigger, UseCaseError};
use futures::FutureExt;

use crate::support::{World, actor};

#[tokio::test]
async fn a_completed_authorization_creates_the_accounts_grant_and_its_state_works_once() {
    let w = World::new();
    let ana = actor("acme", "ana");
    let (started, state) = w.authorize(&ana, None).await;
    assert_eq!(started.expires_at, w.clock_now() + chrono::Duration::minutes(10));
    assert_eq!(started.binding.expose().len(), 43, "a fresh 256-bit binding for a new browser");
    assert!(!w.store.snapshot().contains(state.expose()), "the state is stored as a digest only");

    let cb = w.callback(&started, &state, "acct-1");
    let done = w.oauth.complete(cb.clone()).await.expect("complete");
    assert!(!done.reconnected);
    let g = done.grant;
    assert_eq!((g.account_id.as_str(), g.account_name.as_str()), ("acct-1", "acct-1 name"));
    assert_eq!((g.status, g.attached, &g.created_by), (GrantStatus::Active, false, &ana.user_id));
    assert_eq!(w.grant(&g).await.as_ref(), Some(&g));
    // The fake refuses an exchange whose verifier matches no challenge it issued, so reaching
    // here means the stored verifier was the one behind the authorization URL.
    assert_eq!(w.tokens(&g).await.map(|t| t.access_token), Some(Secret::new("at-1")));
    assert_eq!(
        w.trail("acme").await,
        [("oauth.start".to_owned(), "ana".to_owned()), ("grant.connect".to_owned(), "ana".to_owned())]
    );

    // The browser replays the callback: the state is spent, nothing is exchanged again.
    assert_eq!(w.oauth.complete(cb).await.err(), Some(UseCaseError::InvalidState));
    assert_eq!(w.provider.exchanges(), 1);
}

#[tokio::test]
async fn one_browser_keeps_its_binding_across_authorizations() {
    let w = World::new();
    let ana = actor("acme", "ana");
    let (first, first_state) = w.authorize(&ana, None).await;
    let (second, second_state) = w.authorize(&ana, Some(&first.binding)).await;
    assert_eq!(second.binding, first.binding, "two tabs of one browser");
    // Both authorizations complete from that browser, in either order.
    let g2 = w.oauth.complete(w.callback(&second, &second_state, "acct-2")).await.expect("second");
    let g1 = w.oauth.complete(w.callback(&first, &first_state, "acct-1")).await.expect("first");
    assert_ne!(g1.grant.id, g2.grant.id);
}

#[tokio::test]
async fn a_state_presented_by_another_browser_is_unknown_and_spent() {
    let w = World::new();
    let (ana, bob) = (actor("acme", "ana"), actor("acme", "bob"));
    let (started, state) = w.authorize(&ana, None).await;
    let (bobs, _) = w.authorize(&bob, None).await;
    let cb = w.callback(&started, &state, "acct-1");

    let from_bob = Callback { binding: Some(bobs.binding.clone()), ..cb.clone() };
    assert_eq!(w.oauth.complete(from_bob).await.err(), Some(UseCaseError::InvalidState));
    // Consumed by that attempt: ana's own browser cannot use it afterwards either.
    assert_eq!(w.oauth.complete(cb.clone()).await.err(), Some(UseCaseError::InvalidState));

    let (started, state) = w.authorize(&ana, None).await;
    let no_cookie = Callback { binding: None, ..w.callback(&started, &state, "acct-1") };
    assert_eq!(w.oauth.complete(no_cookie).await.err(), Some(UseCaseError::InvalidState));
    assert_eq!(w.provider.exchanges(), 0, "no code reached the token endpoint");
    assert_eq!(w.trail("acme").await.iter().filter(|(a, _)| a == "grant.connect").count(), 0);
}

#[tokio::test]
async fn an_expired_authorization_is_refused_before_any_exchange() {
    let w = World::new();
    let ana = actor("acme", "ana");
    let (started, state) = w.authorize(&ana, None).await;
    w.clock.advance(Duration::from_secs(599));
    let (late, late_state) = w.authorize(&ana, Some(&started.binding)).await;
    // Exactly at its expiry, a request is expired.
    w.clock.set(started.expires_at);
    let err = w.oauth.complete(w.callback(&started, &state, "acct-1")).await.err();
    assert_eq!(err, Some(UseCaseError::StateExpired));
    assert_eq!(w.provider.exchanges(), 0);
    // A request started later is still good.
    assert!(w.oauth.complete(w.callback(&late, &late_state, "acct-1")).await.is_ok());
}

#[tokio::test]
async fn a_response_at_another_providers_callback_is_a_mix_up() {
    let w = World::new();
    let ana = actor("acme", "ana");
    let (started, state) = w.authorize(&ana, None).await;
    let cb = Callback { provider: ProviderKind::GoogleDrive, ..w.callback(&started, &state, "acct-1") };
    assert_eq!(w.oauth.complete(cb).await.err(), Some(UseCaseError::ProviderMismatch));
    assert_eq!(w.provider.exchanges(), 0);
}

#[tokio::test]
async fn a_declined_or_failed_consent_connects_nothing() {
    let w = World::new();
    let ana = actor("acme", "ana");
    let before = w.vault.len();

    let (started, state) = w.authorize(&ana, None).await;
    let declined = Callback {
        error: Some("access_denied".into()),
        code: None,
        ..w.callback(&started, &state, "acct-1")
    };
    assert_eq!(w.oauth.complete(declined).await.err(), Some(UseCaseError::AccessDenied));

    // Another error code is passed on, reduced to a safe token.
    let (started, state) = w.authorize(&ana, None).await;
    let failed = Callback {
        error: Some("server_error<script>alert(1)</script>".into()),
        code: None,
        ..w.callback(&started, &state, "acct-1")
    };
    let code = "server_errorscriptalert1script".to_owned();
    assert_eq!(w.oauth.complete(failed).await.err(), Some(UseCaseError::ProviderRefused { code }));

    // No code and no error: the code is named as missing.
    let (started, state) = w.authorize(&ana, None).await;
    let bare = Callback { code: None, ..w.callback(&started, &state, "acct-1") };
    assert_eq!(
        w.oauth.complete(bare).await.err(),
        Some(UseCaseError::Invalid { field: "code", reason: "required" })
    );

    assert_eq!(w.provider.exchanges(), 0);
    assert_eq!(w.vault.len(), before, "no tokens stored");
}

#[tokio::test]
async fn a_code_the_provider_will_not_exchange_connects_nothing() {
    let w = World::new();
    let ana = actor("acme", "ana");
    let (started, state) = w.authorize(&ana, None).await;
    w.provider.fail_next_exchange(ProviderError::Permanent("invalid_grant".into()));
    let err = w.oauth.complete(w.callback(&started, &state, "acct-1")).await.err();
    assert_eq!(err, Some(UseCaseError::ExchangeFailed));

    let (started, state) = w.authorize(&ana, None).await;
    w.provider.fail_next_exchange(ProviderError::Transient("503".into()));
    let err = w.oauth.complete(w.callback(&started, &state, "acct-1")).await.err();
    assert_eq!(err, Some(UseCaseError::ProviderUnavailable), "worth trying again later");
    assert!(w.vault.is_empty());
    assert!(
        GrantStore::find_by_account(w.store.as_ref(), &ana.client_id, ProviderKind::Dropbox, "acct-1")
            .await
            .expect("find")
            .is_none()
    );
}

#[tokio::test]
async fn authorizing_the_same_account_again_reconnects_its_grant_and_revives_its_connections() {
    let w = World::new();
    let (ana, bob) = (actor("acme", "ana"), actor("acme", "bob"));
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    w.provider.add_folder("id:videos", "Videos", "/Videos");
    let grant = w.connect_account(&ana, "acct-1").await;
    let photos = w.connect_folder(&ana, &grant, "id:photos").await;
    let videos = w.connect_folder(&ana, &grant, "id:videos").await;
    // The account's refresh token dies: grant and connections need reauthorization. One
    // connection then lost its folder too (the reconnect must not touch it).
    Tokens::new(w.ports.clone(), Default::default()).mark_reauth(&grant).await.expect("mark");
    let unavailable =
        ConnectionPatch { status: Some(ConnectionStatus::FolderUnavailable), ..Default::default() };
    ConnectionStore::update(w.store.as_ref(), &videos.key(), &unavailable).await.expect("patch");
    let old_tokens = w.tokens(&grant).await.expect("tokens");
    w.queue.drain();

    // Another admin of the client authorizes the same account.
    let (started, state) = w.authorize(&bob, None).await;
    let done = w.oauth.complete(w.callback(&started, &state, "acct-1")).await.expect("complete");
    assert!(done.reconnected);
    assert_eq!(done.grant.id, grant.id, "the same grant, not a second one");
    assert_eq!(w.grant(&grant).await.map(|g| g.status), Some(GrantStatus::Active));
    let new_tokens = w.tokens(&grant).await.expect("tokens");
    assert_ne!(new_tokens.access_token, old_tokens.access_token, "the new tokens replace the dead ones");

    let photos = w.connection(&photos).await.expect("photos");
    assert_eq!(photos.status, ConnectionStatus::Active);
    let jobs = w.queue.drain();
    assert_eq!(jobs.len(), 1, "a sync for the revived connection only");
    let job = &jobs[0].0;
    assert_eq!((&job.connection_id, job.trigger), (&photos.id, Trigger::Manual));
    assert_eq!((&job.run_id, job.requested_by.as_ref()), (&photos.current_run_id, Some(&bob.user_id)));
    let videos = w.connection(&videos).await.expect("videos");
    assert_eq!(videos.status, ConnectionStatus::FolderUnavailable);
    assert_eq!(w.trail("acme").await.last(), Some(&("grant.reconnect".to_owned(), "bob".to_owned())));
    // Refresh Items works again, and joins the queued sync.
    let r = w.connections.refresh(&ana, &photos.id).await.expect("refresh");
    assert_eq!((Some(&r.run_id), r.started), (photos.current_run_id.as_ref(), false));
}

#[tokio::test]
async fn two_callbacks_for_the_same_account_at_once_keep_one_grant_with_the_latest_tokens() {
    let w = World::new();
    let ana = actor("acme", "ana");
    let (first, first_state) = w.authorize(&ana, None).await;
    let (second, second_state) = w.authorize(&ana, Some(&first.binding)).await;
    let first_cb = w.callback(&first, &first_state, "acct-1");
    let second_cb = w.callback(&second, &second_state, "acct-1");

    // Both callbacks found no grant for the account; the second creates its grant just before
    // the first tries to.
    let oauth = w.oauth.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    w.before_grant_create(
        async move {
            let _ = tx.send(oauth.complete(second_cb).await);
        }
        .boxed(),
    );
    let first_done = w.oauth.complete(first_cb).await.expect("first");
    w.assert_hooks_fired();
    let second_done = rx.await.expect("second ran").expect("second");
    assert!(!second_done.reconnected && first_done.reconnected);
    assert_eq!(first_done.grant.id, second_done.grant.id, "one grant for the account");
    assert_eq!(w.vault.len(), 1, "the losing create's secret is deleted");
    let stored = w.tokens(&second_done.grant).await.expect("tokens");
    assert_eq!(stored.access_token, Secret::new("at-1"), "the first callback's tokens, written last");
    let trail: Vec<String> = w.trail("acme").await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(trail, ["oauth.start", "oauth.start", "grant.connect", "grant.reconnect"]);
}

#[tokio::test]
async fn a_provider_without_an_app_cannot_be_authorized() {
    let w = World::new();
    let ana = actor("acme", "ana");
    let before = w.store.snapshot();
    let err = w.oauth.start(&ana, ProviderKind::Sharepoint, "https://api.test/cb", None).await.err();
    assert_eq!(err, Some(UseCaseError::ProviderNotConfigured));
    assert_eq!(w.store.snapshot(), before, "no state, no audit event");
}
