//! Identifiers, parsed at the edge ("parse, don't validate").
//!
//! Two families:
//! - *external* ids (`ClientId`, `UserId`) come from the identity provider's claims; they are
//!   accepted when they are 1..=128 characters of a conservative alphabet, so they are safe to
//!   embed in store keys, S3 keys and log lines;
//! - *generated* ids (`ConnectionId`, `GrantId`, `RunId`) are minted here: a fixed prefix and 26
//!   lowercase base32 characters (130 random bits). Parsing checks the exact shape, so a path
//!   segment like `../x` or `CONN#1` can never reach a store.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an id was refused. Carries no input text (callers name the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("contains a character outside [A-Za-z0-9._:@|-]")]
    BadChar,
    #[error("must look like {0}_ followed by 26 lowercase base32 characters")]
    BadShape(&'static str),
}

const EXTERNAL_MAX: usize = 128;

fn check_external(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > EXTERNAL_MAX {
        return Err(IdError::TooLong(EXTERNAL_MAX));
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:@|-".contains(&b)) {
        return Err(IdError::BadChar);
    }
    Ok(())
}

const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const GENERATED_LEN: usize = 26;

/// A scheduler tick's id: what its claims record, so that a retried claim knows its own.
pub fn tick_id() -> String {
    mint("tick")
}

fn mint(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + 1 + GENERATED_LEN);
    s.push_str(prefix);
    s.push('_');
    for _ in 0..GENERATED_LEN {
        s.push(B32[rng.random_range(0..32)] as char);
    }
    s
}

/// Alphabet of the time prefix of [`RunId::generate_at`]: 16 letters of [`B32`] in ASCII order,
/// so that ids compare like the times they carry.
const ORDERED_HEX: &[u8; 16] = b"abcdefghijklmnop";
const TIME_CHARS: usize = 12;

/// 12 characters of milliseconds since the epoch (48 bits: up to the year 10889), then 14 random
/// ones (70 bits): the shape of every generated id, sorting by time.
fn mint_ordered(prefix: &str, millis: u64) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + 1 + GENERATED_LEN);
    s.push_str(prefix);
    s.push('_');
    for i in (0..TIME_CHARS).rev() {
        s.push(ORDERED_HEX[((millis >> (4 * i)) & 0xf) as usize] as char);
    }
    for _ in TIME_CHARS..GENERATED_LEN {
        s.push(B32[rng.random_range(0..32)] as char);
    }
    s
}

fn check_generated(prefix: &'static str, s: &str) -> Result<(), IdError> {
    let ok = s
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|r| r.len() == GENERATED_LEN && r.bytes().all(|b| B32.contains(&b)));
    if ok { Ok(()) } else { Err(IdError::BadShape(prefix)) }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses untrusted text.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> Result<(), IdError> = $check;
                check(s)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// The tenant: a customer organisation of the DAM. Only ever taken from identity claims.
    ClientId, check_external);
string_id!(
    /// A user of the DAM (subject claim).
    UserId, check_external);

macro_rules! generated_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        string_id!($(#[$doc])* $name, |s| check_generated($prefix, s));
        impl $name {
            pub const PREFIX: &'static str = $prefix;
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(mint($prefix))
            }
        }
    };
}

generated_id!(
    /// A folder connection.
    ConnectionId, "con");
generated_id!(
    /// An authorised provider account of one client.
    GrantId, "gra");
generated_id!(
    /// One sync run (survives continuations).
    RunId, "run");

impl RunId {
    /// A fresh id that sorts after every id minted at an earlier millisecond (ids of the same
    /// millisecond are in random order): a connection's runs are listed newest first by their
    /// key alone, with no sort and no read of older runs.
    pub fn generate_at(at: crate::Timestamp) -> Self {
        Self(mint_ordered(Self::PREFIX, u64::try_from(at.timestamp_millis()).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_the_time_they_were_minted() {
        let t0 =
            chrono::DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let mut prev = RunId::generate_at(t0);
        for ms in [1, 2, 999, 1_000, 60_000, 86_400_000, 10 * 365 * 86_400_000_i64] {
            let next = RunId::generate_at(t0 + chrono::Duration::milliseconds(ms));
            assert!(next > prev, "{next} after {prev}");
            assert_eq!(RunId::parse(next.as_str()), Ok(next.clone()), "the generated shape");
            prev = next;
        }
        let (a, b) = (RunId::generate_at(t0), RunId::generate_at(t0));
        assert_ne!(a, b, "70 random bits apart");
    }

    #[test]
    fn generated_ids_round_trip_and_are_distinct() {
        let a = ConnectionId::generate();
        let b = ConnectionId::generate();
        assert_ne!(a, b);
        assert_eq!(ConnectionId::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(a.as_str().len(), 4 + 26);
    }

    #[test]
    fn generated_ids_reject_other_shapes() {
        let g = GrantId::generate();
        assert!(ConnectionId::parse(g.as_str()).is_err(), "prefix is checked");
        for bad in [
            "",
            "con_",
            "con_../../etc/passwd",
            "CON_abcdefghijklmnopqrstuvwxyz",
            "con_ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        ] {
            assert!(ConnectionId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn external_ids_accept_claims_and_refuse_injection() {
        assert!(ClientId::parse("acme-42").is_ok());
        assert!(UserId::parse("auth0|5f7c8ec7c33c6c004bbafe82").is_ok());
        assert!(UserId::parse("ana@example.com").is_ok());
        for bad in ["", "a b", "x#CONN", "a/b", "\" OR attribute_exists(pk)", "é"] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ClientId::parse(&"a".repeat(129)), Err(IdError::TooLong(128)));
    }

    #[test]
    fn serde_parses_too() {
        let r: Result<RunId, _> = serde_json::from_str("\"nope\"");
        assert!(r.is_err());
        let id = RunId::generate();
        let back: RunId = serde_json::from_str(&serde_json::to_string(&id).unwrap()).unwrap();
        assert_eq!(back, id);
    }
}
