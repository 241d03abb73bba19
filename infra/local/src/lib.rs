//! `extconn-local`: the whole system in one process on 127.0.0.1, with no AWS account and no
//! internet (ARCHITECTURE §9). The same API router and sync engine as on AWS, with:
//! - state in memory (`MemoryStore`, `MemoryVault`): **it does not survive a restart**;
//! - assets as files under a data folder, with the S3 key scheme, an index by source path and
//!   asset events as JSON lines (`extconn_core::local`);
//! - an in-process queue with workers ([`queue`]), and scheduler ticks;
//! - the provider sandbox (Dropbox, Google Drive) with the same seeded folders in each, and dev
//!   JWTs for three demo users;
//! - the providers from the registry ([`extconn_providers::registry`]): a provider whose app is
//!   configured in [`Options::providers`] (`EXTCONN_<PROVIDER>_*` in the environment) talks to
//!   that app's hosts; every other provider the sandbox emulates talks to the sandbox;
//! - the admin console page of the API router (`/console`), with a "signed in as" switch
//!   between the demo users, and a check of every request's `Host` header: a page of another
//!   site that reaches 127.0.0.1 through DNS rebinding gets 421, never a dev token.

pub mod demo;
pub mod queue;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use extconn_api::{
    ApiConfig, AppState, ConsolePage, DevAuth, Identity, LocalUser, PageTokens, Problem, ProblemKind,
};
use extconn_core::local::{JsonLinesEvents, LocalAssetSink};
use extconn_core::memory::{MemoryStore, MemoryVault};
use extconn_core::ports::{Clock, SystemClock};
use extconn_core::{ClientId, Ports, ProviderKind, Secret, UserId};
use extconn_providers::registry::{AppSettings, PROVIDERS, RegistrySettings};
use extconn_sandbox::dropbox::{AccountId, Content, DropboxControl};
use extconn_sandbox::google_drive::{GoogleDriveControl, office};
use extconn_sandbox::sharepoint::SharePointControl;
use extconn_sandbox::{ControlError, OAuthClient, ProviderControl, Sandbox, SandboxConfig, Service};
use rand::RngCore;

#[derive(Debug, Clone)]
pub struct Options {
    /// API port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    pub data_dir: PathBuf,
    pub workers: usize,
    /// Run a scheduler tick this often (None = only when [`LocalSystem::tick`] is called).
    pub tick_every: Option<Duration>,
    /// Seconds between two auto syncs of a new connection (None: a deployment's 15 minutes).
    pub sync_interval_secs: Option<u64>,
    /// Origins that may frame the console and hand it a token, as a DAM does in a deployment.
    pub dam_origins: Vec<String>,
    /// Provider apps configured from outside (`serve`: the process environment). Empty = every
    /// provider the sandbox emulates talks to the sandbox.
    pub providers: RegistrySettings,
}

/// Where local mode sends one provider's traffic.
#[derive(Debug, Clone)]
pub struct ProviderRoute {
    pub kind: ProviderKind,
    /// The built-in sandbox (with the app it registered at startup), or an app configured in
    /// [`Options::providers`].
    pub sandbox: bool,
    /// The app: client id and hosts (its secret is redacted in `Debug`).
    pub app: AppSettings,
    /// The OAuth redirect URI the API sends; a configured app must allow it exactly.
    pub redirect_uri: String,
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

/// A Google Doc.
pub const DOC_MIME: &str = "application/vnd.google-apps.document";

pub struct LocalSystem {
    pub api_url: String,
    /// The enabled providers and where each one's traffic goes, in kind order.
    pub providers: Vec<ProviderRoute>,
    pub sandbox: Sandbox,
    pub dbx: DropboxControl,
    /// The seeded Dropbox account that logs in at the consent page.
    pub account: AccountId,
    pub drive: GoogleDriveControl,
    /// The seeded Google Drive account that logs in at Google's consent page.
    pub drive_account: String,
    pub sharepoint: SharePointControl,
    /// The seeded Microsoft account that signs in at the sandbox's Microsoft consent page.
    pub sharepoint_account: String,
    pub data_dir: PathBuf,
    pub ports: Ports,
    pub store: Arc<MemoryStore>,
    pub tokens: DevTokens,
    pub queue: queue::ChannelQueue,
    /// Seconds between two auto syncs of a new connection.
    pub sync_interval_secs: u64,
    /// How often the scheduler ticks (None: only when [`LocalSystem::tick`] is called).
    pub tick_every: Option<Duration>,
}

impl std::fmt::Debug for LocalSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSystem")
            .field("api_url", &self.api_url)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Answers only requests addressed to this server: `Host` must be `127.0.0.1:port` or
/// `localhost:port`. A page of another site whose name an attacker points at 127.0.0.1 (DNS
/// rebinding) would otherwise read the console's dev tokens and call the API as an admin.
async fn only_this_host(
    axum::extract::State(port): axum::extract::State<u16>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let host = req.headers().get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let ours = ["127.0.0.1", "localhost"].iter().any(|name| {
        host.eq_ignore_ascii_case(&format!("{name}:{port}"))
            || (port == 80 && host.eq_ignore_ascii_case(name))
    });
    if !ours {
        return Problem::new(ProblemKind::WrongHost)
            .detail(format!("use http://127.0.0.1:{port} or http://localhost:{port}"))
            .into_response();
    }
    next.run(req).await
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
        let port = listener.local_addr()?.port();
        let mut api_config = ApiConfig::new(&api_url, format!("{api_url}/console"));
        if let Some(secs) = opts.sync_interval_secs {
            api_config.sync_interval_secs = secs;
        }
        let redirect_uri = |kind| api_config.redirect_uri(kind, &axum::http::HeaderMap::new());

        // The sandbox stands in for every provider it emulates that has no configured app.
        let mut settings = opts.providers.clone();
        let emulated: Vec<_> =
            PROVIDERS.iter().filter(|d| d.has_sandbox() && settings.get(d.kind).is_none()).collect();
        let (client_id, client_secret) = ("extconn-local".to_owned(), random_hex(16));
        let sandbox = Sandbox::try_start(SandboxConfig {
            // The sandbox's app, allowed to redirect to the callback of every provider it
            // stands in for.
            clients: Service::ALL
                .iter()
                .map(|&service| OAuthClient {
                    service,
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    redirect_uris: emulated.iter().map(|d| redirect_uri(d.kind)).collect(),
                })
                .collect(),
            ..Default::default()
        })
        .await?;
        // Every emulated service gets the same seeded account; the demo drives each one's.
        let mut accounts = BTreeMap::new();
        for &service in Service::ALL {
            accounts.insert(service.as_str(), seed(sandbox.control(service).as_ref())?);
        }
        let drive_account = accounts.remove(Service::GoogleDrive.as_str()).unwrap_or_default();
        let drive = sandbox.google_drive();
        seed_google_drive(&drive, &drive_account.account, &drive_account.brand)?;
        let sp_account = accounts.remove(Service::Sharepoint.as_str()).unwrap_or_default();
        let sharepoint = sandbox.sharepoint();
        seed_sharepoint(&sharepoint, &sp_account.account)?;
        let dbx = sandbox.dropbox();
        let account = AccountId(accounts.remove(Service::Dropbox.as_str()).unwrap_or_default().account);
        for d in emulated {
            let app = AppSettings::sandbox(d, sandbox.base_url(), &client_id, Secret::new(&client_secret));
            settings.insert_if_absent(app.ok_or_else(|| std::io::Error::other("no sandbox paths"))?);
        }
        let routes: Vec<ProviderRoute> = settings
            .apps()
            .map(|app| ProviderRoute {
                kind: app.kind(),
                sandbox: opts.providers.get(app.kind()).is_none(),
                app: app.clone(),
                redirect_uri: redirect_uri(app.kind()),
            })
            .collect();
        for r in &routes {
            if r.sandbox {
                tracing::info!(provider = %r.kind, sandbox = %sandbox.base_url(), "provider: the sandbox");
            } else {
                tracing::info!(
                    provider = %r.kind, client_id = r.app.client_id(), redirect_uri = %r.redirect_uri,
                    bases = ?r.app.bases().map(|(_, v)| v).collect::<Vec<_>>(),
                    "provider: the app configured in the environment (not the sandbox)"
                );
            }
        }
        let registry = settings
            .build()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
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
            providers: registry.into_map(),
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
        api_config.console = ConsolePage {
            dam_origins: opts.dam_origins.clone(),
            local_users: [
                ("ana", "Ana Admin — client admin of acme", &tokens.admin),
                ("vic", "Vic Viewer — acme, not an admin", &tokens.viewer),
                ("eve", "Eve Admin — client admin of globex", &tokens.other_client_admin),
            ]
            .into_iter()
            .map(|(id, label, token)| LocalUser {
                id: id.into(),
                label: label.into(),
                token: Secret::new(token),
            })
            .collect(),
        };
        let sync_interval_secs = api_config.sync_interval_secs;
        let state = AppState::new(ports.clone(), api_config, PageTokens::random());
        let app = extconn_api::router(state)
            .layer(axum::middleware::from_fn_with_state(dev, DevAuth::layer))
            .layer(axum::middleware::from_fn_with_state(port, only_this_host));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "API server stopped");
            }
        });
        let system = LocalSystem {
            api_url,
            providers: routes,
            sandbox,
            dbx,
            account,
            drive,
            drive_account: drive_account.account,
            sharepoint,
            sharepoint_account: sp_account.account,
            data_dir: opts.data_dir,
            ports,
            store,
            tokens,
            queue,
            sync_interval_secs,
            tick_every: opts.tick_every,
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

    /// What `serve` prints on startup: URLs, where each provider's traffic goes (and the
    /// redirect URI a configured app must allow), the dev tokens.
    pub fn serve_banner(&self) -> String {
        use std::fmt::Write;
        let mut b = String::new();
        let api = &self.api_url;
        let _ = writeln!(
            b,
            "External Connections — local mode. State lives in memory: it is gone when this stops."
        );
        let _ = writeln!(b);
        let _ = writeln!(
            b,
            "  Console              {api}/console   (\"signed in as\" switches between the users below)"
        );
        let _ = writeln!(b, "  API                  {api}/v1   (OpenAPI: {api}/v1/openapi.json)");
        let _ = writeln!(
            b,
            "  Data folder          {}   (assets: objects/, by source path: index/, events.jsonl, connection-events.jsonl)",
            self.data_dir.display()
        );
        let _ = writeln!(
            b,
            "  Sandbox              {}   (consent pages, control API: see the README)",
            self.sandbox.base_url()
        );
        let _ = writeln!(b);
        let _ = writeln!(b, "  Providers:");
        for p in &self.providers {
            let kind = p.kind.as_str();
            if p.sandbox {
                let _ = writeln!(b, "    {kind:<14} the sandbox");
            } else {
                let _ = writeln!(
                    b,
                    "    {kind:<14} the app configured in the environment, client id {}, NOT the sandbox",
                    p.app.client_id()
                );
                for (setting, value) in p.app.bases() {
                    let _ =
                        writeln!(b, "    {:<14} {} = {value}", "", p.app.descriptor().var(setting.suffix));
                }
                let _ = writeln!(b, "    {:<14} redirect URI the app must allow: {}", "", p.redirect_uri);
            }
        }
        let _ = writeln!(b);
        let _ = writeln!(b, "  Dev tokens (Authorization: Bearer …):");
        let _ = writeln!(b, "    Ana, admin of acme:        {}", self.tokens.admin);
        let _ = writeln!(b, "    Vic, non-admin of acme:    {}", self.tokens.viewer);
        let _ = writeln!(b, "    Eve, admin of globex:      {}", self.tokens.other_client_admin);
        let _ = writeln!(b);
        let _ = writeln!(
            b,
            "  Open the console, add a connection, approve at the provider (the sandbox signs in its seeded\n  \
             account: pick \"Brand Assets\"; in Google Drive it is in My Drive, and the shared drive\n  \
             \"Marketing\" holds \"Campaign assets\"; in SharePoint it is in the OneDrive, and the site\n  \
             \"Marketing\" has it in its \"Documents\" library)."
        );
        let every = |d: u64| if d.is_multiple_of(60) { format!("{} min", d / 60) } else { format!("{d} s") };
        let _ = writeln!(
            b,
            "  Auto sync: a connection with Auto sync ON syncs every {} here (a deployment: every 15 min),\n  \
             checked by a scheduler tick every {}; Refresh Items syncs at once. Ctrl-C stops.",
            every(self.sync_interval_secs),
            self.tick_every.map_or("— (no ticks)".into(), |t| every(t.as_secs()))
        );
        b
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

/// A seeded sandbox account: its id and its "Brand Assets" folder's.
#[derive(Debug, Default)]
struct Seeded {
    account: String,
    brand: String,
}

/// The sandbox account that logs in at the consent page, with folders worth connecting. Built
/// through the provider-neutral control (ids, not paths), so any emulated provider can be seeded.
fn seed(control: &dyn ProviderControl) -> std::io::Result<Seeded> {
    let io = |e: ControlError| std::io::Error::other(e.to_string());
    let acct = control.create_account("Demo Designer", "designer@example.com");
    let root = control.root(&acct).map_err(io)?;
    let mut folders: BTreeMap<String, String> = BTreeMap::new();
    // The id of the folder at `path` (`a/b`), created on first use.
    let mut folder = |path: &str| -> std::io::Result<String> {
        let mut parent = root.clone();
        let mut at = String::new();
        for name in path.split('/').filter(|n| !n.is_empty()) {
            at = format!("{at}/{name}");
            parent = match folders.get(&at) {
                Some(id) => id.clone(),
                None => {
                    let id = control.add_folder(&acct, &parent, name).map_err(io)?.id;
                    folders.insert(at.clone(), id.clone());
                    id
                }
            };
        }
        Ok(parent)
    };
    let files: &[(&str, &str, u64)] = &[
        ("Brand Assets", "logo.png", 48_213),
        ("Brand Assets", "logo.svg", 3_190),
        ("Brand Assets", "Brand guidelines.pdf", 1_048_576 + 77),
        ("Brand Assets/Photos", "hero-1.jpg", 734_003),
        ("Brand Assets/Photos", "hero-2.jpg", 812_441),
        ("Brand Assets/Photos", "team (final) v2.jpg", 402_118),
        ("Brand Assets/Video", "teaser.mp4", 6 * 1024 * 1024 + 5),
        ("Brand Assets/Fonts", "Inter-Regular.ttf", 309_828),
        ("Campaign 2026", "banner-wide.png", 221_003),
        ("Campaign 2026", "copy.docx", 18_219),
        ("Archive/2019", "old-logo.png", 12_001),
    ];
    for (i, (dir, name, size)) in files.iter().enumerate() {
        let parent = folder(dir)?;
        control.add_file(&acct, &parent, name, Content::generated(*size, i as u64 + 1)).map_err(io)?;
    }
    let brand = folder("Brand Assets")?;
    let readme = Content::text("Use the blue logo on light backgrounds.\n");
    control.add_file(&acct, &brand, "README.txt", readme).map_err(io)?;
    let notes = Content::text("A file at the root, not in any folder.\n");
    control.add_file(&acct, &root, "notes.txt", notes).map_err(io)?;
    Ok(Seeded { account: acct, brand })
}

/// What only Drive has: a Google Doc in "Brand Assets" (imported as its .docx export) and a
/// shared drive with a folder worth connecting.
fn seed_google_drive(drive: &GoogleDriveControl, account: &str, brand: &str) -> std::io::Result<()> {
    let io = |e: ControlError| std::io::Error::other(e.to_string());
    let brief = office::docx("Brand brief: the blue logo on light backgrounds, the white one on photos.");
    drive.add_native(account, brand, "Brand brief", DOC_MIME, Some(brief)).map_err(io)?;
    let shared = drive.add_shared_drive(account, "Marketing").map_err(io)?;
    let campaign = drive.add_folder(account, &shared, "Campaign assets").map_err(io)?.id;
    drive.add_file(account, &campaign, "poster.png", Content::generated(150_001, 41)).map_err(io)?;
    Ok(())
}

/// What only SharePoint has: a site, "Marketing", whose "Documents" library holds "Campaign
/// assets" (with a subfolder and an Office file) and another team's folder in the same library,
/// whose changes the library-wide delta feed reports too.
fn seed_sharepoint(sp: &SharePointControl, account: &str) -> std::io::Result<()> {
    let io = |e: ControlError| std::io::Error::other(e.to_string());
    let site = sp.add_site("Marketing");
    let library = sp.default_library(&site.id).map_err(io)?;
    let campaign = sp.add_folder(account, &library.root_id, "Campaign assets").map_err(io)?.id;
    let social = sp.add_folder(account, &campaign, "Social").map_err(io)?.id;
    let other = sp.add_folder(account, &library.root_id, "Other team").map_err(io)?.id;
    let files: [(&str, &str, u64); 6] = [
        (&campaign, "poster.png", 150_001),
        (&campaign, "banner-wide.png", 221_003),
        (&campaign, "Launch plan.pdf", 1_048_576 + 13),
        (&social, "square.png", 64_007),
        (&social, "story.mp4", 3 * 1024 * 1024 + 1),
        (&other, "budget.csv", 9_001),
    ];
    for (i, (parent, name, size)) in files.into_iter().enumerate() {
        sp.add_file(account, parent, name, Content::generated(size, 60 + i as u64)).map_err(io)?;
    }
    sp.add_site("Sales");
    Ok(())
}
