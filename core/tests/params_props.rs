//! Property tests of the request parameters core checks for the services: customer names
//! (`customer` of listings and statistics, `[[keys]] customer`) and the customer whose
//! statistics a key may read (`Principal::stats_scope`).

use imagelake_core::auth::{validate_customer, Principal, Role};
use proptest::prelude::*;

fn customerish() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,70}", "[A-Za-z0-9_./ -]{1,10}", Just("acme".to_string())]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Uploader), Just(Role::Analyst), Just(Role::Admin)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// A customer is 1 to 64 of `[A-Za-z0-9_-]`, nothing else: it becomes part of object
    /// keys and lake partitions.
    #[test]
    fn customers(c in customerish()) {
        let boring = c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match validate_customer(&c) {
            Ok(()) => prop_assert!(boring && (1..=64).contains(&c.len()), "{c:?}"),
            Err(m) => {
                prop_assert!(!boring || c.is_empty() || c.len() > 64, "{c:?} refused: {m}");
                prop_assert!(m.contains("1 to 64"));
            }
        }
    }

    /// Admins and keys for every customer read what they ask (everyone when they ask for
    /// no one); any other key reads its own customer only, and is refused another's.
    #[test]
    fn stats_scopes(own in "[a-z]{1,8}", role in role(), all_customers in any::<bool>(),
                    asked in proptest::option::of(prop_oneof![Just(None), "[a-z]{1,8}".prop_map(Some)])) {
        let p = Principal { customer: own.clone(), role, all_customers };
        let asked = asked.map(|a| a.unwrap_or_else(|| own.clone()));
        let got = p.stats_scope(asked.clone());
        if role == Role::Admin || all_customers {
            prop_assert_eq!(got, Ok(asked));
        } else {
            match asked {
                None => prop_assert_eq!(got, Ok(Some(own))),
                Some(a) if a == own => prop_assert_eq!(got, Ok(Some(own))),
                Some(a) => {
                    let e = got.unwrap_err();
                    prop_assert!(e.contains(&own) && e.contains(&a), "{}", e);
                }
            }
        }
    }
}
