//! The provider conformance suite (`tests/support/conformance.rs`) on every connector that has a
//! sandbox: one test per case and provider, so a failure names both.

use extconn_system_tests::conformance::{self, subjects};

macro_rules! case {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            for subject in subjects() {
                conformance::$name(&subject).await;
            }
        }
    };
}

case!(oauth_round_trip);
case!(picker);
case!(changes);
case!(cursor_reset);
case!(rate_limit);
case!(revoke);
case!(ranged_download);
case!(swapped_names);
