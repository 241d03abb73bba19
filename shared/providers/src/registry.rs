//! The provider registry: which providers are enabled and with which app credentials, read from
//! configuration in one place.
//!
//! [`PROVIDERS`] is the table of every provider this crate can connect to, one
//! [`ProviderDescriptor`] a row: its environment prefix, the base-URL settings with their
//! defaults (the real hosts; paths are appended under each base), where the sandbox emulates it,
//! and how to build its connector. Rows: Dropbox (`EXTCONN_DROPBOX`: `AUTHORIZE_BASE`,
//! `API_BASE`, `CONTENT_BASE`), Google Drive (`EXTCONN_GOOGLE_DRIVE`: `AUTHORIZE_BASE`,
//! `TOKEN_BASE`, `API_BASE`) and SharePoint (`EXTCONN_SHAREPOINT`: `LOGIN_BASE`, `GRAPH_BASE`,
//! and the non-URL setting `TENANT`, default `organizations`).
//!
//! Reading is two steps so that the crate needs no AWS dependency:
//! 1. [`RegistrySettings::from_lookup`] reads and validates every provider's settings through a
//!    lookup function (the process environment, or a map in tests). The client secret is either
//!    the value itself or the id of a secret to fetch (the Lambdas use Secrets Manager).
//! 2. [`RegistrySettings::build`] (secrets given directly) or
//!    [`RegistrySettings::build_resolving`] (secret ids resolved by the caller's function) builds
//!    the connectors into a [`Registry`].
//!
//! # Variables, for a provider with prefix `P` (Dropbox: `EXTCONN_DROPBOX`)
//! | variable | meaning |
//! |---|---|
//! | `P_CLIENT_ID` | the app's client id (Dropbox: app key) |
//! | `P_CLIENT_SECRET` | the app's client secret itself (local mode) |
//! | `P_CLIENT_SECRET_ID` | or: the id (name or ARN) of the secret holding it (the Lambdas, Secrets Manager) |
//! | `P_<BASE>` | optional host overrides, see [`ProviderDescriptor::bases`] |
//! | `P_<SETTING>` | optional other settings with a default, see [`ProviderDescriptor::extras`] (SharePoint: `EXTCONN_SHAREPOINT_TENANT`) |
//!
//! A provider is **enabled** when its client id and a secret are configured, and absent when
//! none of its variables is set. Anything in between (an id without a secret, a secret, a base
//! URL or another setting without an id, both secret forms, a base URL that does not parse, a
//! setting its provider refuses) is a [`RegistryError`]
//! naming the variable: a startup error, never a silently disabled provider. Values are trimmed
//! of surrounding whitespace (a secret pasted with its newline), and an empty or blank value
//! counts as unset (CloudFormation passes `""` for an unset parameter).
//!
//! Secrets never appear in a `Debug` output or an error message.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use extconn_core::ports::{Provider, ProviderError};
use extconn_core::{ProviderKind, Secret};

use crate::dropbox::{Dropbox, DropboxConfig};
use crate::google_drive::{GoogleDrive, GoogleDriveConfig};
use crate::sharepoint::{SharePoint, SharePointConfig, valid_tenant};

/// One provider's row in [`PROVIDERS`].
pub struct ProviderDescriptor {
    pub kind: ProviderKind,
    /// Prefix of its variables, e.g. `EXTCONN_DROPBOX` (see the module docs).
    pub env_prefix: &'static str,
    /// Its base-URL settings, in the order its build function receives their values.
    pub bases: &'static [BaseSetting],
    /// Its other settings (not URLs), in the order its build function receives their values.
    pub extras: &'static [ExtraSetting],
    /// Builds the connector from a complete configuration.
    build: fn(AppConfig<'_>) -> Result<Arc<dyn Provider>, ProviderError>,
}

/// A base-URL setting: variable `{env_prefix}_{suffix}`, defaulting to the real host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseSetting {
    /// e.g. `API_BASE`.
    pub suffix: &'static str,
    /// The real host, e.g. `https://api.dropboxapi.com` (no trailing slash).
    pub default: &'static str,
    /// Where `extconn-sandbox` serves this host, as a path under the sandbox's base URL
    /// (e.g. `/dropbox/api`); `None` when the sandbox does not emulate the provider. All of a
    /// provider's bases have one or none. The paths mirror the sandbox's layout (this crate does
    /// not depend on the sandbox); the test `sandbox_settings_reach_the_sandbox` keeps them equal.
    pub sandbox_path: Option<&'static str>,
}

/// A setting that is not a base URL: variable `{env_prefix}_{suffix}`, with a default and a
/// validity check (a value it refuses is a [`RegistryError::InvalidSetting`] naming the
/// variable).
#[derive(Debug, Clone, Copy)]
pub struct ExtraSetting {
    /// e.g. `TENANT`.
    pub suffix: &'static str,
    pub default: &'static str,
    /// What a valid value is, for the error message.
    pub expected: &'static str,
    pub valid: fn(&str) -> bool,
}

/// What a descriptor's `build` function receives: a complete, validated configuration.
struct AppConfig<'a> {
    client_id: &'a str,
    client_secret: Secret,
    /// Values of the descriptor's `bases`, in order, without a trailing slash.
    bases: &'a [String],
    /// Values of the descriptor's `extras`, in order.
    extras: &'a [String],
}

/// Every provider this build can connect to.
pub static PROVIDERS: &[ProviderDescriptor] = &[
    ProviderDescriptor {
        kind: ProviderKind::Dropbox,
        env_prefix: "EXTCONN_DROPBOX",
        bases: &[
            BaseSetting {
                suffix: "AUTHORIZE_BASE",
                default: DropboxConfig::WWW_BASE,
                sandbox_path: Some("/dropbox/www"),
            },
            BaseSetting {
                suffix: "API_BASE",
                default: DropboxConfig::API_BASE,
                sandbox_path: Some("/dropbox/api"),
            },
            BaseSetting {
                suffix: "CONTENT_BASE",
                default: DropboxConfig::CONTENT_BASE,
                sandbox_path: Some("/dropbox/content"),
            },
        ],
        extras: &[],
        build: build_dropbox,
    },
    ProviderDescriptor {
        kind: ProviderKind::GoogleDrive,
        env_prefix: "EXTCONN_GOOGLE_DRIVE",
        bases: &[
            BaseSetting {
                suffix: "AUTHORIZE_BASE",
                default: GoogleDriveConfig::AUTHORIZE_BASE,
                sandbox_path: Some("/google_drive/accounts"),
            },
            BaseSetting {
                suffix: "TOKEN_BASE",
                default: GoogleDriveConfig::TOKEN_BASE,
                sandbox_path: Some("/google_drive/oauth2"),
            },
            BaseSetting {
                suffix: "API_BASE",
                default: GoogleDriveConfig::API_BASE,
                sandbox_path: Some("/google_drive/www"),
            },
        ],
        extras: &[],
        build: build_google_drive,
    },
    ProviderDescriptor {
        kind: ProviderKind::Sharepoint,
        env_prefix: "EXTCONN_SHAREPOINT",
        bases: &[
            BaseSetting {
                suffix: "LOGIN_BASE",
                default: SharePointConfig::LOGIN_BASE,
                sandbox_path: Some("/sharepoint/login"),
            },
            BaseSetting {
                suffix: "GRAPH_BASE",
                default: SharePointConfig::GRAPH_BASE,
                sandbox_path: Some("/sharepoint/graph"),
            },
        ],
        extras: &[ExtraSetting {
            suffix: "TENANT",
            default: SharePointConfig::DEFAULT_TENANT,
            expected: "common, organizations, consumers, a tenant GUID or a domain name",
            valid: valid_tenant,
        }],
        build: build_sharepoint,
    },
];

fn dropbox_config(app: AppConfig<'_>) -> Result<DropboxConfig, ProviderError> {
    let [authorize, api, content] = app.bases else {
        return Err(ProviderError::Permanent(format!("Dropbox takes 3 base URLs, got {}", app.bases.len())));
    };
    Ok(DropboxConfig::new(app.client_id, app.client_secret).with_bases(authorize, api, content))
}

fn build_dropbox(app: AppConfig<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
    Ok(Arc::new(Dropbox::try_new(dropbox_config(app)?)?))
}

fn google_drive_config(app: AppConfig<'_>) -> Result<GoogleDriveConfig, ProviderError> {
    let [authorize, token, api] = app.bases else {
        return Err(ProviderError::Permanent(format!(
            "Google Drive takes 3 base URLs, got {}",
            app.bases.len()
        )));
    };
    Ok(GoogleDriveConfig::new(app.client_id, app.client_secret).with_bases(authorize, token, api))
}

fn build_google_drive(app: AppConfig<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
    Ok(Arc::new(GoogleDrive::try_new(google_drive_config(app)?)?))
}

fn sharepoint_config(app: AppConfig<'_>) -> Result<SharePointConfig, ProviderError> {
    let ([login, graph], [tenant]) = (app.bases, app.extras) else {
        return Err(ProviderError::Permanent(format!(
            "SharePoint takes 2 base URLs and a tenant, got {} and {}",
            app.bases.len(),
            app.extras.len()
        )));
    };
    Ok(SharePointConfig::new(app.client_id, app.client_secret).with_bases(login, graph).with_tenant(tenant))
}

fn build_sharepoint(app: AppConfig<'_>) -> Result<Arc<dyn Provider>, ProviderError> {
    Ok(Arc::new(SharePoint::try_new(sharepoint_config(app)?)?))
}

/// The row of `kind`, if this build knows the provider.
pub fn descriptor(kind: ProviderKind) -> Option<&'static ProviderDescriptor> {
    PROVIDERS.iter().find(|d| d.kind == kind)
}

impl ProviderDescriptor {
    /// `{env_prefix}_{suffix}`, e.g. `EXTCONN_DROPBOX_CLIENT_ID`.
    pub fn var(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.env_prefix)
    }

    /// Whether `extconn-sandbox` emulates this provider (see [`BaseSetting::sandbox_path`]).
    pub fn has_sandbox(&self) -> bool {
        !self.bases.is_empty() && self.bases.iter().all(|b| b.sandbox_path.is_some())
    }

    /// Reads this provider's settings: `Ok(None)` when none of its variables is set.
    fn read(
        &'static self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<AppSettings>, RegistryError> {
        let opt = |suffix: &str| {
            let name = self.var(suffix);
            get(&name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).map(|v| (name, v))
        };
        let id = opt("CLIENT_ID");
        let secret = opt("CLIENT_SECRET");
        let secret_id = opt("CLIENT_SECRET_ID");
        let bases = self.bases.iter().map(|b| opt(b.suffix)).collect::<Vec<_>>();
        let extras = self.extras.iter().map(|x| opt(x.suffix)).collect::<Vec<_>>();

        let Some((_, client_id)) = id else {
            // Any other variable of the provider without the id is a half configuration.
            let set = [&secret, &secret_id].into_iter().chain(&bases).chain(&extras).flatten().next();
            return match set {
                Some((name, _)) => {
                    Err(RegistryError::Incomplete { missing: self.var("CLIENT_ID"), set: name.clone() })
                }
                None => Ok(None),
            };
        };
        let client_secret = match (secret, secret_id) {
            (Some((_, v)), None) => ClientSecret::Value(Secret::new(v)),
            (None, Some((variable, id))) => ClientSecret::SecretId { variable, id },
            (Some((a, _)), Some((b, _))) => return Err(RegistryError::Conflict { variable: a, other: b }),
            (None, None) => {
                return Err(RegistryError::Incomplete {
                    missing: format!("{} (or {})", self.var("CLIENT_SECRET"), self.var("CLIENT_SECRET_ID")),
                    set: self.var("CLIENT_ID"),
                });
            }
        };
        let mut values = Vec::with_capacity(self.bases.len());
        for (setting, value) in self.bases.iter().zip(bases) {
            values.push(match value {
                Some((variable, v)) => base_url(&variable, &v)?,
                None => {
                    // The default is a real https host: refuse it now, naming the variable,
                    // rather than fail on the first request of a build without TLS.
                    if !TLS && setting.default.starts_with("https:") {
                        return Err(RegistryError::InvalidBase {
                            variable: self.var(setting.suffix),
                            reason: format!("defaults to {}, {NO_TLS}", setting.default),
                        });
                    }
                    setting.default.to_owned()
                }
            });
        }
        let mut extra_values = Vec::with_capacity(self.extras.len());
        for (setting, value) in self.extras.iter().zip(extras) {
            extra_values.push(match value {
                Some((variable, v)) if !(setting.valid)(&v) => {
                    // Not echoed, like base URLs: a misplaced secret must not reach a log.
                    return Err(RegistryError::InvalidSetting { variable, expected: setting.expected });
                }
                Some((_, v)) => v,
                None => setting.default.to_owned(),
            });
        }
        Ok(Some(AppSettings {
            descriptor: self,
            client_id,
            client_secret,
            bases: values,
            extras: extra_values,
        }))
    }
}

impl fmt::Debug for ProviderDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderDescriptor")
            .field("kind", &self.kind)
            .field("env_prefix", &self.env_prefix)
            .field("bases", &self.bases)
            .field("extras", &self.extras.iter().map(|x| x.suffix).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Whether this build's connectors speak TLS (the `rustls` feature).
const TLS: bool = cfg!(feature = "rustls");
const NO_TLS: &str = "but this build has no TLS (the rustls feature of extconn-providers)";

/// Validates a configured base URL: absolute `http`/`https` with a host, no credentials, query
/// or fragment (a path is fine: the sandbox serves each host under one). Returns it without a
/// trailing slash. The value is never echoed: it may carry credentials by mistake.
fn base_url(variable: &str, value: &str) -> Result<String, RegistryError> {
    let invalid =
        |reason: &str| RegistryError::InvalidBase { variable: variable.to_owned(), reason: reason.into() };
    let url = url::Url::parse(value).map_err(|e| invalid(&format!("not an absolute URL ({e})")))?;
    match url.scheme() {
        "https" if !TLS => return Err(invalid(&format!("an https URL, {NO_TLS}"))),
        "http" | "https" => {}
        _ => return Err(invalid("the scheme must be http or https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("the URL must not contain credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or a fragment"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// How an app's client secret is configured (`Debug` shows no secret: [`Secret`] redacts itself).
#[derive(Clone, Debug)]
pub enum ClientSecret {
    /// The secret itself (`P_CLIENT_SECRET`).
    Value(Secret),
    /// The id of a secret store entry holding it (`P_CLIENT_SECRET_ID`), resolved by
    /// [`RegistrySettings::build_resolving`]'s caller.
    SecretId {
        /// The variable it was read from, for error messages.
        variable: String,
        id: String,
    },
}

/// One provider's validated settings (its app credentials and hosts).
#[derive(Clone)]
pub struct AppSettings {
    descriptor: &'static ProviderDescriptor,
    client_id: String,
    client_secret: ClientSecret,
    /// In the order of `descriptor.bases`.
    bases: Vec<String>,
    /// In the order of `descriptor.extras`.
    extras: Vec<String>,
}

impl AppSettings {
    /// The settings of an app registered with a running `extconn-sandbox` at `sandbox_base_url`
    /// (`http://127.0.0.1:PORT`); `None` when the sandbox does not emulate the provider.
    pub fn sandbox(
        descriptor: &'static ProviderDescriptor,
        sandbox_base_url: &str,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Option<AppSettings> {
        let root = sandbox_base_url.trim_end_matches('/');
        let bases = descriptor
            .bases
            .iter()
            .map(|b| b.sandbox_path.map(|p| format!("{root}{p}")))
            .collect::<Option<Vec<_>>>()?;
        Some(AppSettings {
            descriptor,
            client_id: client_id.into(),
            client_secret: ClientSecret::Value(client_secret),
            bases,
            extras: descriptor.extras.iter().map(|x| x.default.to_owned()).collect(),
        })
    }

    pub fn kind(&self) -> ProviderKind {
        self.descriptor.kind
    }

    pub fn descriptor(&self) -> &'static ProviderDescriptor {
        self.descriptor
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn client_secret(&self) -> &ClientSecret {
        &self.client_secret
    }

    /// The value of the base setting with this suffix (e.g. `AUTHORIZE_BASE`).
    pub fn base(&self, suffix: &str) -> Option<&str> {
        let i = self.descriptor.bases.iter().position(|b| b.suffix == suffix)?;
        self.bases.get(i).map(String::as_str)
    }

    /// The value of the other setting with this suffix (e.g. `TENANT`), its default if unset.
    pub fn extra(&self, suffix: &str) -> Option<&str> {
        let i = self.descriptor.extras.iter().position(|x| x.suffix == suffix)?;
        self.extras.get(i).map(String::as_str)
    }

    /// Every base setting with its value, in the descriptor's order.
    pub fn bases(&self) -> impl Iterator<Item = (&'static BaseSetting, &str)> {
        self.descriptor.bases.iter().zip(self.bases.iter().map(String::as_str))
    }

    fn build(&self, client_secret: Secret) -> Result<Arc<dyn Provider>, RegistryError> {
        // Trimmed like every setting (a secret stored with its newline).
        let client_secret = Secret::new(client_secret.expose().trim());
        if client_secret.expose().is_empty() {
            return Err(RegistryError::EmptySecret { provider: self.kind() });
        }
        let app =
            AppConfig { client_id: &self.client_id, client_secret, bases: &self.bases, extras: &self.extras };
        (self.descriptor.build)(app)
            .map_err(|e| RegistryError::Connector { provider: self.kind(), reason: e.to_string() })
    }
}

impl fmt::Debug for AppSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSettings")
            .field("kind", &self.descriptor.kind)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("bases", &self.bases)
            .field("extras", &self.extras)
            .finish()
    }
}

/// The validated settings of every configured provider, before the connectors are built.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    apps: BTreeMap<ProviderKind, AppSettings>,
}

impl RegistrySettings {
    /// Reads every provider of [`PROVIDERS`] through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<RegistrySettings, RegistryError> {
        let mut apps = BTreeMap::new();
        for d in PROVIDERS {
            if let Some(app) = d.read(&get)? {
                apps.insert(d.kind, app);
            }
        }
        Ok(RegistrySettings { apps })
    }

    /// [`RegistrySettings::from_lookup`] on the process environment.
    pub fn from_env() -> Result<RegistrySettings, RegistryError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn get(&self, kind: ProviderKind) -> Option<&AppSettings> {
        self.apps.get(&kind)
    }

    /// The configured providers' settings, by kind.
    pub fn apps(&self) -> impl Iterator<Item = &AppSettings> {
        self.apps.values()
    }

    /// Adds `app` unless its provider is configured already (local mode's sandbox defaults).
    /// Returns whether it was added.
    pub fn insert_if_absent(&mut self, app: AppSettings) -> bool {
        match self.apps.entry(app.kind()) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(app);
                true
            }
        }
    }

    /// Builds the connectors. Every secret must be given directly: a secret id is an error
    /// (only [`RegistrySettings::build_resolving`] can fetch one).
    pub fn build(self) -> Result<Registry, RegistryError> {
        let mut providers = BTreeMap::new();
        for (kind, app) in &self.apps {
            let secret = match &app.client_secret {
                ClientSecret::Value(s) => s.clone(),
                ClientSecret::SecretId { variable, .. } => {
                    return Err(RegistryError::UnresolvedSecret {
                        variable: variable.clone(),
                        direct: app.descriptor.var("CLIENT_SECRET"),
                    });
                }
            };
            providers.insert(*kind, app.build(secret)?);
        }
        Ok(Registry { providers })
    }

    /// Builds the connectors, fetching each secret given by id with `resolve(id)` (called once
    /// per such app, in kind order). `resolve`'s error message must not contain the secret; it
    /// is wrapped in a [`RegistryError::Secret`] naming the variable.
    pub async fn build_resolving<F, Fut, E>(self, resolve: F) -> Result<Registry, RegistryError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Secret, E>>,
        E: fmt::Display,
    {
        let mut providers = BTreeMap::new();
        for (kind, app) in &self.apps {
            let secret = match &app.client_secret {
                ClientSecret::Value(s) => s.clone(),
                ClientSecret::SecretId { variable, id } => {
                    resolve(id.clone()).await.map_err(|e| RegistryError::Secret {
                        variable: variable.clone(),
                        secret_id: id.clone(),
                        reason: e.to_string(),
                    })?
                }
            };
            providers.insert(*kind, app.build(secret)?);
        }
        Ok(Registry { providers })
    }
}

/// The enabled providers' connectors.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<ProviderKind, Arc<dyn Provider>>,
}

impl Registry {
    /// Reads and builds in one step; secrets must be given directly (see
    /// [`RegistrySettings::build`]).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Registry, RegistryError> {
        RegistrySettings::from_lookup(get)?.build()
    }

    pub fn get(&self, kind: ProviderKind) -> Option<&Arc<dyn Provider>> {
        self.providers.get(&kind)
    }

    pub fn contains(&self, kind: ProviderKind) -> bool {
        self.providers.contains_key(&kind)
    }

    /// The enabled providers, in [`ProviderKind`] order.
    pub fn kinds(&self) -> impl Iterator<Item = ProviderKind> + '_ {
        self.providers.keys().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The map `Ports::providers` takes.
    pub fn into_map(self) -> BTreeMap<ProviderKind, Arc<dyn Provider>> {
        self.providers
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("providers", &self.providers.keys().collect::<Vec<_>>()).finish()
    }
}

/// A configuration that cannot start. Every message names the variable to fix and never
/// contains a secret or a configured URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("{missing} is not set, but {set} is: configure both, or neither to disable the provider")]
    Incomplete { missing: String, set: String },
    #[error("{variable} and {other} are both set: configure the secret one way only")]
    Conflict { variable: String, other: String },
    #[error("{variable}: {reason}")]
    InvalidBase { variable: String, reason: String },
    #[error("{variable}: invalid value, expected {expected}")]
    InvalidSetting { variable: String, expected: &'static str },
    #[error("{variable} names a stored secret, which only the AWS functions can read: set {direct} instead")]
    UnresolvedSecret { variable: String, direct: String },
    #[error("{variable}: cannot read the secret {secret_id}: {reason}")]
    Secret { variable: String, secret_id: String, reason: String },
    #[error("{provider}: the client secret is empty")]
    EmptySecret { provider: ProviderKind },
    #[error("{provider}: cannot build the connector: {reason}")]
    Connector { provider: ProviderKind, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    use extconn_core::ports::provider::AuthorizeRequest;

    const ID: &str = "app-key";
    const SECRET: &str = "CANARY-app-secret";

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    fn settings(vars: &[(&str, &str)]) -> Result<RegistrySettings, RegistryError> {
        RegistrySettings::from_lookup(lookup(vars))
    }

    fn err(vars: &[(&str, &str)]) -> RegistryError {
        settings(vars).expect_err("a configuration error")
    }

    /// Every way an error or a Debug text could show: none may contain the secret.
    fn assert_no_secret(text: &str) {
        assert!(!text.contains(SECRET), "the secret leaked: {text}");
    }

    #[test]
    fn nothing_configured_enables_nothing() {
        let registry = Registry::from_lookup(lookup(&[])).unwrap();
        assert!(registry.is_empty());
        // Blank values count as unset (CloudFormation passes "" for an empty parameter).
        let blank = settings(&[("EXTCONN_DROPBOX_CLIENT_ID", ""), ("EXTCONN_DROPBOX_CLIENT_SECRET_ID", " ")]);
        assert_eq!(blank.unwrap().apps().count(), 0);
        // Other providers' or unrelated variables do not enable Dropbox.
        let other = settings(&[("DROPBOX_CLIENT_ID", ID), ("DROPBOX_CLIENT_SECRET", SECRET)]).unwrap();
        assert!(other.get(ProviderKind::Dropbox).is_none());
    }

    #[test]
    fn id_and_secret_enable_dropbox_on_the_real_hosts_with_tls() {
        let vars = [("EXTCONN_DROPBOX_CLIENT_ID", ID), ("EXTCONN_DROPBOX_CLIENT_SECRET", SECRET)];
        if !TLS {
            // The defaults are https: a build without TLS refuses them at startup, by name.
            let e = err(&vars);
            assert_eq!(
                e.to_string(),
                format!("EXTCONN_DROPBOX_AUTHORIZE_BASE: defaults to https://www.dropbox.com, {NO_TLS}")
            );
            return;
        }
        let s = settings(&vars).unwrap();
        let app = s.get(ProviderKind::Dropbox).expect("dropbox configured");
        assert_eq!(app.client_id(), ID);
        assert_eq!(app.base("AUTHORIZE_BASE"), Some("https://www.dropbox.com"));
        assert_eq!(app.base("API_BASE"), Some("https://api.dropboxapi.com"));
        assert_eq!(app.base("CONTENT_BASE"), Some("https://content.dropboxapi.com"));
        assert_no_secret(&format!("{s:?}"));
        let registry = s.build().unwrap();
        assert_eq!(registry.kinds().collect::<Vec<_>>(), [ProviderKind::Dropbox]);
        assert_eq!(registry.get(ProviderKind::Dropbox).map(|p| p.kind()), Some(ProviderKind::Dropbox));
        assert_no_secret(&format!("{registry:?}"));
    }

    #[test]
    fn a_configured_https_base_needs_tls() {
        let vars = [
            ("EXTCONN_DROPBOX_CLIENT_ID", ID),
            ("EXTCONN_DROPBOX_CLIENT_SECRET", SECRET),
            ("EXTCONN_DROPBOX_AUTHORIZE_BASE", "http://127.0.0.1:1"),
            ("EXTCONN_DROPBOX_API_BASE", "https://api.example.test/"),
            ("EXTCONN_DROPBOX_CONTENT_BASE", "http://127.0.0.1:3"),
        ];
        match (TLS, settings(&vars)) {
            (true, Ok(s)) => assert_eq!(
                s.get(ProviderKind::Dropbox).and_then(|a| a.base("API_BASE")),
                Some("https://api.example.test")
            ),
            (false, Err(e)) => {
                assert_eq!(e.to_string(), format!("EXTCONN_DROPBOX_API_BASE: an https URL, {NO_TLS}"))
            }
            (tls, other) => panic!("TLS {tls}: {other:?}"),
        }
    }

    #[test]
    fn overrides_replace_each_base_and_reach_the_connector_config() {
        let s = settings(&[
            ("EXTCONN_DROPBOX_CLIENT_ID", ID),
            ("EXTCONN_DROPBOX_CLIENT_SECRET", SECRET),
            ("EXTCONN_DROPBOX_AUTHORIZE_BASE", "http://127.0.0.1:1/www/"),
            ("EXTCONN_DROPBOX_API_BASE", "http://127.0.0.1:2/api"),
            ("EXTCONN_DROPBOX_CONTENT_BASE", "http://127.0.0.1:3"),
        ])
        .unwrap();
        let app = s.get(ProviderKind::Dropbox).unwrap();
        assert_eq!(
            app.bases().map(|(b, v)| (b.suffix, v)).collect::<Vec<_>>(),
            [
                ("AUTHORIZE_BASE", "http://127.0.0.1:1/www"),
                ("API_BASE", "http://127.0.0.1:2/api"),
                ("CONTENT_BASE", "http://127.0.0.1:3")
            ]
        );
        let config = dropbox_config(AppConfig {
            client_id: app.client_id(),
            client_secret: Secret::new(SECRET),
            bases: &app.bases,
            extras: &app.extras,
        })
        .unwrap();
        assert_eq!(config.client_id, ID);
        assert_eq!(config.client_secret.expose(), SECRET);
        assert_eq!(config.www_base, "http://127.0.0.1:1/www");
        assert_eq!(config.api_base, "http://127.0.0.1:2/api");
        assert_eq!(config.content_base, "http://127.0.0.1:3");
    }

    #[test]
    fn google_drive_is_configured_like_dropbox() {
        let s = settings(&[
            ("EXTCONN_GOOGLE_DRIVE_CLIENT_ID", ID),
            ("EXTCONN_GOOGLE_DRIVE_CLIENT_SECRET_ID", "extconn/google-drive-app"),
            ("EXTCONN_GOOGLE_DRIVE_AUTHORIZE_BASE", "http://127.0.0.1:1/accounts/"),
            ("EXTCONN_GOOGLE_DRIVE_TOKEN_BASE", "http://127.0.0.1:2/oauth2"),
            ("EXTCONN_GOOGLE_DRIVE_API_BASE", "http://127.0.0.1:3"),
        ])
        .unwrap();
        assert!(s.get(ProviderKind::Dropbox).is_none());
        let app = s.get(ProviderKind::GoogleDrive).unwrap();
        assert!(
            matches!(app.client_secret(), ClientSecret::SecretId { id, .. } if id == "extconn/google-drive-app")
        );
        assert!(app.descriptor().has_sandbox());
        let config = google_drive_config(AppConfig {
            client_id: app.client_id(),
            client_secret: Secret::new(SECRET),
            bases: &app.bases,
            extras: &app.extras,
        })
        .unwrap();
        assert_eq!(config.client_id, ID);
        assert_eq!(config.authorize_base, "http://127.0.0.1:1/accounts");
        assert_eq!(config.token_base, "http://127.0.0.1:2/oauth2");
        assert_eq!(config.api_base, "http://127.0.0.1:3");
        let e = err(&[("EXTCONN_GOOGLE_DRIVE_CLIENT_ID", ID)]);
        assert!(e.to_string().contains("EXTCONN_GOOGLE_DRIVE_CLIENT_SECRET"), "{e}");
        let d = descriptor(ProviderKind::GoogleDrive).unwrap();
        assert_eq!(
            d.bases.iter().map(|b| (b.suffix, b.default)).collect::<Vec<_>>(),
            [
                ("AUTHORIZE_BASE", "https://accounts.google.com"),
                ("TOKEN_BASE", "https://oauth2.googleapis.com"),
                ("API_BASE", "https://www.googleapis.com")
            ]
        );
    }

    #[test]
    fn sharepoint_is_configured_with_a_tenant() {
        let s = settings(&[
            ("EXTCONN_SHAREPOINT_CLIENT_ID", ID),
            ("EXTCONN_SHAREPOINT_CLIENT_SECRET", SECRET),
            ("EXTCONN_SHAREPOINT_LOGIN_BASE", "http://127.0.0.1:1/sharepoint/login/"),
            ("EXTCONN_SHAREPOINT_GRAPH_BASE", "http://127.0.0.1:1/sharepoint/graph"),
        ])
        .unwrap();
        let app = s.get(ProviderKind::Sharepoint).unwrap();
        assert_eq!(app.extra("TENANT"), Some("organizations"), "the default");
        assert_eq!(app.extra("NOPE"), None);
        assert!(app.descriptor().has_sandbox());
        assert_no_secret(&format!("{s:?}"));
        let config = sharepoint_config(AppConfig {
            client_id: app.client_id(),
            client_secret: Secret::new(SECRET),
            bases: &app.bases,
            extras: &app.extras,
        })
        .unwrap();
        assert_eq!(
            (config.login_base.as_str(), config.graph_base.as_str(), config.tenant.as_str()),
            ("http://127.0.0.1:1/sharepoint/login", "http://127.0.0.1:1/sharepoint/graph", "organizations")
        );
        let registry = s.build().unwrap();
        assert_eq!(registry.get(ProviderKind::Sharepoint).map(|p| p.kind()), Some(ProviderKind::Sharepoint));

        let with = |tenant: &'static str| {
            settings(&[
                ("EXTCONN_SHAREPOINT_CLIENT_ID", ID),
                ("EXTCONN_SHAREPOINT_CLIENT_SECRET", SECRET),
                ("EXTCONN_SHAREPOINT_TENANT", tenant),
                ("EXTCONN_SHAREPOINT_LOGIN_BASE", "http://127.0.0.1:1"),
                ("EXTCONN_SHAREPOINT_GRAPH_BASE", "http://127.0.0.1:2"),
            ])
        };
        for ok in ["common", "consumers", "contoso.onmicrosoft.com", " 72f988bf-86f1-41af-91ab-2d7cd011db47 "]
        {
            let s = with(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(s.get(ProviderKind::Sharepoint).and_then(|a| a.extra("TENANT")), Some(ok.trim()));
        }
        for bad in ["contoso", "a/b", "CANARY-app-secret", "https://login.microsoftonline.com"] {
            let e = with(bad).expect_err(bad);
            assert_eq!(
                e,
                RegistryError::InvalidSetting {
                    variable: "EXTCONN_SHAREPOINT_TENANT".into(),
                    expected: "common, organizations, consumers, a tenant GUID or a domain name"
                }
            );
            assert!(!e.to_string().contains(bad), "{e}");
        }
        // A tenant alone is a half configuration.
        let e = err(&[("EXTCONN_SHAREPOINT_TENANT", "common")]);
        assert_eq!(
            e,
            RegistryError::Incomplete {
                missing: "EXTCONN_SHAREPOINT_CLIENT_ID".into(),
                set: "EXTCONN_SHAREPOINT_TENANT".into()
            }
        );
        let d = descriptor(ProviderKind::Sharepoint).unwrap();
        assert_eq!(
            d.bases.iter().map(|b| (b.suffix, b.default, b.sandbox_path)).collect::<Vec<_>>(),
            [
                ("LOGIN_BASE", "https://login.microsoftonline.com", Some("/sharepoint/login")),
                ("GRAPH_BASE", "https://graph.microsoft.com", Some("/sharepoint/graph"))
            ]
        );
        let app = AppSettings::sandbox(d, "http://127.0.0.1:5/", ID, Secret::new(SECRET)).unwrap();
        assert_eq!(app.base("GRAPH_BASE"), Some("http://127.0.0.1:5/sharepoint/graph"));
        assert_eq!(app.extra("TENANT"), Some("organizations"));
    }

    #[test]
    fn half_configurations_name_the_missing_variable() {
        let e = err(&[("EXTCONN_DROPBOX_CLIENT_ID", ID)]);
        assert_eq!(
            e,
            RegistryError::Incomplete {
                missing: "EXTCONN_DROPBOX_CLIENT_SECRET (or EXTCONN_DROPBOX_CLIENT_SECRET_ID)".into(),
                set: "EXTCONN_DROPBOX_CLIENT_ID".into()
            }
        );
        for set in [
            "EXTCONN_DROPBOX_CLIENT_SECRET",
            "EXTCONN_DROPBOX_CLIENT_SECRET_ID",
            "EXTCONN_DROPBOX_CONTENT_BASE",
        ] {
            let e = err(&[(set, "http://127.0.0.1:9")]);
            assert_eq!(
                e,
                RegistryError::Incomplete { missing: "EXTCONN_DROPBOX_CLIENT_ID".into(), set: set.into() }
            );
            assert!(e.to_string().starts_with("EXTCONN_DROPBOX_CLIENT_ID is not set, but"), "{e}");
        }
        let e = err(&[
            ("EXTCONN_DROPBOX_CLIENT_ID", ID),
            ("EXTCONN_DROPBOX_CLIENT_SECRET", SECRET),
            ("EXTCONN_DROPBOX_CLIENT_SECRET_ID", "extconn/dropbox"),
        ]);
        assert!(matches!(e, RegistryError::Conflict { .. }), "{e:?}");
        assert!(e.to_string().contains("EXTCONN_DROPBOX_CLIENT_SECRET and EXTCONN_DROPBOX_CLIENT_SECRET_ID"));
        assert_no_secret(&format!("{e} {e:?}"));
    }

    #[test]
    fn a_bad_base_url_names_its_variable_and_not_its_value() {
        for (value, reason) in [
            ("api.dropboxapi.com", "not an absolute URL"),
            ("ftp://127.0.0.1", "the scheme must be http or https"),
            ("http://user:CANARY-app-secret@127.0.0.1", "the URL must not contain credentials"),
            ("http://127.0.0.1/api?x=1", "the URL must not have a query or a fragment"),
            ("http://127.0.0.1/api#top", "the URL must not have a query or a fragment"),
        ] {
            let e = err(&[
                ("EXTCONN_DROPBOX_CLIENT_ID", ID),
                ("EXTCONN_DROPBOX_CLIENT_SECRET", SECRET),
                ("EXTCONN_DROPBOX_AUTHORIZE_BASE", "http://127.0.0.1:1"),
                ("EXTCONN_DROPBOX_API_BASE", value),
                ("EXTCONN_DROPBOX_CONTENT_BASE", "http://127.0.0.1:3"),
            ]);
            let text = e.to_string();
            assert!(text.starts_with(&format!("EXTCONN_DROPBOX_API_BASE: {reason}")), "{value}: {text}");
            assert!(!text.contains(value), "{text}");
            assert_no_secret(&format!("{text} {e:?}"));
        }
    }

    #[tokio::test]
    async fn a_secret_id_is_resolved_by_the_caller_and_only_there() {
        let vars = [
            ("EXTCONN_DROPBOX_CLIENT_ID", ID),
            ("EXTCONN_DROPBOX_CLIENT_SECRET_ID", "extconn/dropbox-app"),
            ("EXTCONN_DROPBOX_AUTHORIZE_BASE", "http://127.0.0.1:1"),
            ("EXTCONN_DROPBOX_API_BASE", "http://127.0.0.1:2"),
            ("EXTCONN_DROPBOX_CONTENT_BASE", "http://127.0.0.1:3"),
        ];
        let s = settings(&vars).unwrap();
        match s.get(ProviderKind::Dropbox).map(AppSettings::client_secret) {
            Some(ClientSecret::SecretId { variable, id }) => {
                assert_eq!(
                    (variable.as_str(), id.as_str()),
                    ("EXTCONN_DROPBOX_CLIENT_SECRET_ID", "extconn/dropbox-app")
                )
            }
            other => panic!("expected a secret id, got {other:?}"),
        }
        // Without a resolver (local mode), a secret id is an error naming the direct variable.
        let e = s.clone().build().expect_err("no resolver");
        assert_eq!(
            e.to_string(),
            "EXTCONN_DROPBOX_CLIENT_SECRET_ID names a stored secret, which only the AWS functions can \
             read: set EXTCONN_DROPBOX_CLIENT_SECRET instead"
        );

        let asked = std::sync::Mutex::new(Vec::new());
        let registry = s
            .clone()
            .build_resolving(|id| {
                asked.lock().unwrap().push(id);
                async { Ok::<_, String>(Secret::new(SECRET)) }
            })
            .await
            .unwrap();
        assert!(registry.contains(ProviderKind::Dropbox));
        assert_eq!(*asked.lock().unwrap(), ["extconn/dropbox-app"]);

        let e = s
            .clone()
            .build_resolving(|_| async { Err::<Secret, _>("AccessDeniedException") })
            .await
            .expect_err("resolver failed");
        assert_eq!(
            e.to_string(),
            "EXTCONN_DROPBOX_CLIENT_SECRET_ID: cannot read the secret extconn/dropbox-app: AccessDeniedException"
        );
        let e = s.build_resolving(|_| async { Ok::<_, String>(Secret::new("  ")) }).await.expect_err("empty");
        assert_eq!(e, RegistryError::EmptySecret { provider: ProviderKind::Dropbox });
    }

    #[test]
    fn every_provider_row_is_consistent() {
        let mut prefixes = std::collections::BTreeSet::new();
        for d in PROVIDERS {
            assert!(prefixes.insert(d.env_prefix), "duplicate prefix {}", d.env_prefix);
            assert_eq!(descriptor(d.kind).map(|x| x.env_prefix), Some(d.env_prefix), "one row per kind");
            assert!(
                d.bases.iter().all(|b| b.sandbox_path.is_some())
                    || d.bases.iter().all(|b| b.sandbox_path.is_none()),
                "{:?}: the sandbox emulates all of a provider's hosts or none",
                d.kind
            );
            for b in d.bases {
                assert!(b.default.starts_with("https://") && !b.default.ends_with('/'), "{}", b.default);
            }
            for x in d.extras {
                assert!((x.valid)(x.default), "{:?}: the default of {} is valid", d.kind, x.suffix);
                assert!(d.bases.iter().all(|b| b.suffix != x.suffix), "{}", x.suffix);
            }
        }
    }

    /// The sandbox paths in the table are where `extconn-sandbox` really serves Dropbox, and the
    /// connector built from `AppSettings::sandbox` talks to it (authorize on the www base,
    /// account on the api base).
    #[tokio::test]
    async fn sandbox_settings_reach_the_sandbox() {
        let sandbox = extconn_sandbox::Sandbox::start(extconn_sandbox::SandboxConfig {
            clients: vec![extconn_sandbox::OAuthClient {
                service: extconn_sandbox::Service::Dropbox,
                client_id: ID.into(),
                client_secret: SECRET.into(),
                redirect_uris: vec!["http://127.0.0.1:9/v1/oauth/dropbox/callback".into()],
            }],
            ..Default::default()
        })
        .await;
        let dbx = sandbox.dropbox();
        let urls = dbx.urls();
        let d = descriptor(ProviderKind::Dropbox).unwrap();
        assert!(d.has_sandbox());
        let app =
            AppSettings::sandbox(d, &format!("{}/", sandbox.base_url()), ID, Secret::new(SECRET)).unwrap();
        assert_eq!(app.base("AUTHORIZE_BASE"), Some(urls.www_base.as_str()));
        assert_eq!(app.base("API_BASE"), Some(urls.api_base.as_str()));
        assert_eq!(app.base("CONTENT_BASE"), Some(urls.content_base.as_str()));

        let mut s = RegistrySettings::default();
        assert!(s.insert_if_absent(app.clone()));
        assert!(!s.insert_if_absent(app), "a configured provider is kept");
        let registry = s.build().unwrap();
        let provider = registry.get(ProviderKind::Dropbox).unwrap();
        let url = provider
            .authorize_url(&AuthorizeRequest {
                state: Secret::new("state"),
                pkce_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
                redirect_uri: "http://127.0.0.1:9/v1/oauth/dropbox/callback".into(),
            })
            .unwrap();
        assert!(url.starts_with(&urls.authorize_url()), "{url}");
        let acct = dbx.create_account("Ada Lovelace", "ada@example.com");
        let (access, _) = dbx.mint_tokens(&acct, ID);
        let info = provider.account(&Secret::new(access)).await.unwrap();
        assert_eq!(info.display_name, "Ada Lovelace");
        sandbox.shutdown();
    }

    /// The same for Google Drive: authorize on the accounts base, tokens on the oauth2 base,
    /// the account on the api base.
    #[tokio::test]
    async fn google_drive_sandbox_settings_reach_the_sandbox() {
        let redirect = "http://127.0.0.1:9/v1/oauth/google_drive/callback";
        let sandbox = extconn_sandbox::Sandbox::start(extconn_sandbox::SandboxConfig {
            clients: vec![extconn_sandbox::OAuthClient {
                service: extconn_sandbox::Service::GoogleDrive,
                client_id: ID.into(),
                client_secret: SECRET.into(),
                redirect_uris: vec![redirect.into()],
            }],
            ..Default::default()
        })
        .await;
        let drive = sandbox.google_drive();
        let urls = drive.urls();
        let d = descriptor(ProviderKind::GoogleDrive).unwrap();
        assert!(d.has_sandbox());
        let app = AppSettings::sandbox(d, sandbox.base_url(), ID, Secret::new(SECRET)).unwrap();
        assert_eq!(app.base("AUTHORIZE_BASE"), Some(urls.accounts_base.as_str()));
        assert_eq!(app.base("TOKEN_BASE"), Some(urls.token_base.as_str()));
        assert_eq!(app.base("API_BASE"), Some(urls.api_base.as_str()));
        let mut s = RegistrySettings::default();
        assert!(s.insert_if_absent(app));
        let registry = s.build().unwrap();
        let provider = registry.get(ProviderKind::GoogleDrive).unwrap();
        let url = provider
            .authorize_url(&AuthorizeRequest {
                state: Secret::new("state"),
                pkce_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
                redirect_uri: redirect.into(),
            })
            .unwrap();
        assert!(url.starts_with(&urls.authorize_url()), "{url}");
        let acct = drive.create_account("Grace Hopper", "grace@example.com");
        let minted = drive.mint_tokens(&acct, ID).unwrap();
        let info = provider.account(&Secret::new(minted.access_token)).await.unwrap();
        assert_eq!((info.account_id.as_str(), info.display_name.as_str()), (acct.as_str(), "Grace Hopper"));
        sandbox.shutdown();
    }

    #[tokio::test]
    async fn sharepoint_sandbox_settings_reach_the_sandbox() {
        let redirect = "http://127.0.0.1:9/v1/oauth/sharepoint/callback";
        let sandbox = extconn_sandbox::Sandbox::start(extconn_sandbox::SandboxConfig {
            clients: vec![extconn_sandbox::OAuthClient {
                service: extconn_sandbox::Service::Sharepoint,
                client_id: ID.into(),
                client_secret: SECRET.into(),
                redirect_uris: vec![redirect.into()],
            }],
            ..Default::default()
        })
        .await;
        let sp = sandbox.sharepoint();
        let urls = sp.urls();
        let d = descriptor(ProviderKind::Sharepoint).unwrap();
        assert!(d.has_sandbox());
        let app = AppSettings::sandbox(d, sandbox.base_url(), ID, Secret::new(SECRET)).unwrap();
        assert_eq!(app.base("LOGIN_BASE"), Some(urls.login_base.as_str()));
        assert_eq!(app.base("GRAPH_BASE"), Some(urls.graph_base.as_str()));
        let mut s = RegistrySettings::default();
        assert!(s.insert_if_absent(app));
        let registry = s.build().unwrap();
        let provider = registry.get(ProviderKind::Sharepoint).unwrap();
        let url = provider
            .authorize_url(&AuthorizeRequest {
                state: Secret::new("state"),
                pkce_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
                redirect_uri: redirect.into(),
            })
            .unwrap();
        assert!(url.starts_with(&urls.authorize_url("organizations")), "{url}");
        let acct = sp.create_account("Grace Hopper", "grace@example.com");
        let minted = sp.mint_tokens(&acct, ID).unwrap();
        let info = provider.account(&Secret::new(minted.access_token)).await.unwrap();
        assert_eq!((info.account_id.as_str(), info.display_name.as_str()), (acct.as_str(), "Grace Hopper"));
        sandbox.shutdown();
    }
}
