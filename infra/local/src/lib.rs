//! `extconn-local`: the whole system in one process on 127.0.0.1, with no AWS account and no
//! internet (ARCHITECTURE §9). The same API router and sync engine as on AWS, with:
//! - state in memory (`MemoryStore`, `MemoryVault`): **it does not survive a restart**;
//! - assets as files under a data folder, with the S3 key scheme, an index by source path and
//!   asset events as JSON lines (`extconn_core::local`);
//! - an in-process queue with workers ([`queue`]), and scheduler ticks;
//! - the provider sandbox (Dropbox) with seeded folders, and dev JWTs for three demo users;
//! - a minimal built-in console ([`console`]) until the real admin console exists.

pub mod console;
pub mod demo;
pub mod queue;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use extconn_api::{ApiConfig, AppState, DevAuth, Identity, PageTokens};
use extconn_core::local::{JsonLinesEvents, LocalAssetSink};
use extconn_core::memory::{MemoryStore, MemoryVault};
use extconn_core::ports::{Clock, Provider, SystemClock};
use extconn_core::{ClientId, Ports, ProviderKind, Secret, UserId};
use extconn_providers::{Dropbox, DropboxConfig};
use extconn_sandbox::dropbox::{AccountId, Content, DropboxControl};
use extconn_sandbox::{OAuthClient, Sandbox, SandboxConfig, Service};
use rand::RngCore;

#[derive(Debug, Clone)]
pub struct Options {
    /// API port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    pub data_dir: PathBuf,
    pub workers: usize,
    /// Run a scheduler tick this often (None = only when [`LocalSystem::tick`] is called).
    pub tick_every: Option<Duration>,
}

/// Dev JWTs for the demo users.
#[derive(Debug, Clone)]
pub struct DevTokens {
    /// Ana, client admin of `acme`.
    pub admin: String,
    /// Vic, a user of `acme` without the admin permission.
    pub viewer: String,
    /// Eve, client admin of another client, `globex`.
    pub other_client_admin: String,
}

pub struct LocalSystem {
    pub api_url: String,
    pub sandbox: Sandbox,
    pub dbx: DropboxControl,
    /// The seeded Dropbox account that logs in at the consent page.
    pub account: AccountId,
    pub data_dir: PathBuf,
    pub ports: Ports,
    pub store: Arc<MemoryStore>,
    pub tokens: DevTokens,
    pub queue: queue::ChannelQueue,
}

impl std::fmt::Debug for LocalSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSystem")
            .field("api_url", &self.api_url)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn identity(user: &str, name: &str, client: &str, admin: bool) -> Identity {
    Identity {
        user_id: UserId::parse(user).expect("static user id"),
        display_name: name.into(),
        client_id: ClientId::parse(client).expect("static client id"),
        is_client_admin: admin,
    }
}

impl LocalSystem {
    pub async fn start(opts: Options) -> std::io::Result<LocalSystem> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await?;
        let api_url = format!("http://{}", listener.local_addr()?);
        let redirect = format!("{api_url}/v1/oauth/dropbox/callback");
        let (client_id, client_secret) = ("extconn-local".to_owned(), random_hex(16));
        let sandbox = Sandbox::try_start(SandboxConfig {
            clients: vec![OAuthClient {
                service: Service::Dropbox,
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                redirect_uris: vec![redirect],
            }],
            ..Default::default()
        })
        .await?;
        let dbx = sandbox.dropbox();
        let account = seed(&dbx);

        let urls = dbx.urls();
        let config = DropboxConfig::new(client_id, Secret::new(client_secret)).with_bases(
            urls.www_base.clone(),
            urls.api_base.clone(),
            urls.content_base.clone(),
        );
        let dropbox: Arc<dyn Provider> = Arc::new(Dropbox::new(config));
        std::fs::create_dir_all(&opts.data_dir)?;
        let store = Arc::new(MemoryStore::new());
        let (queue, rx) = queue::ChannelQueue::new();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ports = Ports {
            connections: store.clone(),
            grants: store.clone(),
            items: store.clone(),
            runs: store.clone(),
            oauth_states: store.clone(),
            vault: Arc::new(MemoryVault::new()),
            sink: Arc::new(LocalAssetSink::new(&opts.data_dir)),
            events: Arc::new(JsonLinesEvents::new(&opts.data_dir)),
            queue: Arc::new(queue.clone()),
            audit: store.clone(),
            clock,
            providers: BTreeMap::from([(ProviderKind::Dropbox, dropbox)]),
        };
        queue::spawn_workers(&ports, queue.clone(), rx, opts.workers.max(1));

        let dev = DevAuth::new(random_hex(32));
        let now = chrono::Utc::now().timestamp();
        let day = 24 * 3600;
        let tokens = DevTokens {
            admin: dev.issue(&identity("ana", "Ana Admin", "acme", true), now, day),
            viewer: dev.issue(&identity("vic", "Vic Viewer", "acme", false), now, day),
            other_client_admin: dev.issue(&identity("eve", "Eve Admin", "globex", true), now, day),
        };
        let state = AppState::new(
            ports.clone(),
            ApiConfig::new(&api_url, format!("{api_url}/console/connect")),
            PageTokens::random(),
        );
        let app = extconn_api::router(state)
            .merge(console::router(tokens.admin.clone()))
            .layer(axum::middleware::from_fn_with_state(dev, DevAuth::layer));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "API server stopped");
            }
        });
        let system = LocalSystem {
            api_url,
            sandbox,
            dbx,
            account,
            data_dir: opts.data_dir,
            ports,
            store,
            tokens,
            queue,
        };
        if let Some(every) = opts.tick_every {
            let ports = system.ports.clone();
            tokio::spawn(async move {
                let mut t = tokio::time::interval(every);
                loop {
                    t.tick().await;
                    let _ = tick(&ports, ports.clock.now()).await;
                }
            });
        }
        Ok(system)
    }

    /// One scheduler tick at `now` (due connections → queue) and the grant sweep.
    pub async fn tick(&self, now: extconn_core::Timestamp) -> usize {
        tick(&self.ports, now).await
    }
}

async fn tick(ports: &Ports, now: extconn_core::Timestamp) -> usize {
    let sent = extconn_core::scheduler::tick(ports, now).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "scheduler tick failed");
        0
    });
    if let Err(e) = extconn_core::grants::sweep(ports, now).await {
        tracing::warn!(error = %e, "grant sweep failed");
    }
    sent
}

/// The sandbox's Dropbox account, with folders worth connecting.
fn seed(dbx: &DropboxControl) -> AccountId {
    let acct = dbx.create_account("Demo Designer", "designer@example.com");
    let files: &[(&str, u64)] = &[
        ("/Brand Assets/logo.png", 48_213),
        ("/Brand Assets/logo.svg", 3_190),
        ("/Brand Assets/Brand guidelines.pdf", 1_048_576 + 77),
        ("/Brand Assets/Photos/hero-1.jpg", 734_003),
        ("/Brand Assets/Photos/hero-2.jpg", 812_441),
        ("/Brand Assets/Photos/team (final) v2.jpg", 402_118),
        ("/Brand Assets/Video/teaser.mp4", 6 * 1024 * 1024 + 5),
        ("/Brand Assets/Fonts/Inter-Regular.ttf", 309_828),
        ("/Campaign 2026/banner-wide.png", 221_003),
        ("/Campaign 2026/copy.docx", 18_219),
        ("/Archive/2019/old-logo.png", 12_001),
    ];
    for (i, (path, size)) in files.iter().enumerate() {
        dbx.add_file(&acct, path, Content::generated(*size, i as u64 + 1));
    }
    dbx.add_file(
        &acct,
        "/Brand Assets/README.txt",
        Content::text("Use the blue logo on light backgrounds.\n"),
    );
    dbx.add_file(&acct, "/notes.txt", Content::text("A file at the root, not in any folder.\n"));
    dbx.set_login_account(&acct);
    acct
}
