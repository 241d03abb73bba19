//! Opaque page tokens, bound to the client and the listing they came from: the payload is
//! MAC'd with a server key, so a token cannot be forged, edited, or replayed by another client
//! or on another list (→ 400 `invalid-page-token`). Never a raw store key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use extconn_core::ClientId;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::problem::{ApiResult, Problem, ProblemKind};

#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(***)")
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    c: String,
    s: String,
    k: String,
}

impl PageTokens {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    pub fn random() -> Self {
        use rand::RngCore;
        let mut k = vec![0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Self { key: k }
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(data);
        m
    }

    /// A token for resuming `scope` (e.g. `runs:con_…`) after `key`.
    pub fn issue(&self, client: &ClientId, scope: &str, key: &str) -> String {
        let p = serde_json::to_vec(&Payload { c: client.to_string(), s: scope.into(), k: key.into() })
            .unwrap_or_default();
        let body = B64.encode(p);
        let sig = B64.encode(self.mac(body.as_bytes()).finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// The resume key, if the token is genuine and was issued to this client for this scope.
    pub fn open(&self, client: &ClientId, scope: &str, token: &str) -> ApiResult<String> {
        let bad = || Problem::new(ProblemKind::InvalidPageToken);
        let (body, sig) = token.split_once('.').ok_or_else(bad)?;
        self.mac(body.as_bytes()).verify_slice(&B64.decode(sig).map_err(|_| bad())?).map_err(|_| bad())?;
        let p: Payload = serde_json::from_slice(&B64.decode(body).map_err(|_| bad())?).map_err(|_| bad())?;
        if p.c != client.as_str() || p.s != scope {
            return Err(bad());
        }
        Ok(p.k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_client_and_scope() {
        let t = PageTokens::new("k");
        let (a, b) = (ClientId::parse("a").unwrap(), ClientId::parse("b").unwrap());
        let tok = t.issue(&a, "runs:x", "42");
        assert_eq!(t.open(&a, "runs:x", &tok).unwrap(), "42");
        assert!(t.open(&b, "runs:x", &tok).is_err(), "another client");
        assert!(t.open(&a, "runs:y", &tok).is_err(), "another list");
        assert!(PageTokens::new("other").open(&a, "runs:x", &tok).is_err(), "forged");
        assert!(t.open(&a, "runs:x", "garbage").is_err());
    }
}
