//! Local-mode adapters (no AWS): assets as files under a data folder, using the same key scheme
//! as S3, and asset events as JSON lines plus a human-readable index by source path.
//!
//! Layout of the data folder:
//! ```text
//! objects/<client>/<connection>/<item digest>/<version digest>   the asset bytes
//! meta/<same key>.json                                           its metadata
//! tmp/<random>.part                                              uploads in progress
//! events.jsonl                                                   one AssetEvent per line
//! index/<client>/<connection>/<source path>                      symlink to the current object
//! ```

mod events;
mod sink;
mod writer;

pub use events::JsonLinesEvents;
pub use sink::LocalAssetSink;

/// Maps a provider path to a relative filesystem path that stays inside its folder, whatever
/// the name contains (`..`, control characters, over-long segments).
pub(crate) fn safe_relative_path(path: &str) -> std::path::PathBuf {
    use sha2::{Digest, Sha256};
    let mut out = std::path::PathBuf::new();
    for seg in path.split(['/', '\\']).filter(|s| !s.is_empty()) {
        let mut s: String = seg.chars().map(|c| if c.is_control() { '_' } else { c }).collect();
        if s == "." || s == ".." {
            s = format!("_{s}_");
        }
        if s.len() > 200 {
            let digest = hex::encode(&Sha256::digest(seg.as_bytes())[..6]);
            let mut cut = 180;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s = format!("{}~{digest}", &s[..cut]);
        }
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::safe_relative_path;
    use std::path::Component;

    #[test]
    fn hostile_paths_stay_inside() {
        for p in
            ["/../../etc/passwd", "/a/./b", "..\\..\\x", "/a\u{0}b/c\nd", &format!("/{}", "é".repeat(300))]
        {
            let rel = safe_relative_path(p);
            assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{p:?} → {rel:?}");
            assert!(rel.components().all(|c| c.as_os_str().len() <= 255));
        }
        assert_eq!(safe_relative_path("/Photos/2024/a.jpg"), std::path::PathBuf::from("Photos/2024/a.jpg"));
    }
}
