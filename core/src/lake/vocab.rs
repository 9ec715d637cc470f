//! The lake's status vocabularies: the values of `jobs.status`, `deletions.kind` and
//! `deletions.reason`, `posts.event` and `comments.event`, in one place. Each is written as
//! its snake_case name (in Parquet, in the outbox's JSON and in SQL), so the strings the
//! SQL files, BI tools and earlier lakes use are unchanged.

use serde::{Deserialize, Serialize};

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as the lake writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| format!("not a {}: {s:?}", stringify!($name)))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// How a processing attempt ended (`jobs.status`).
    AttemptStatus { Succeeded => "succeeded", Failed => "failed", DeadLettered => "dead_lettered" }
}

vocabulary! {
    /// What a deletion removed (`deletions.kind`): an original, one stored format of a
    /// variant, or the received bytes of an abandoned resumable upload.
    DeletionKind { Original => "original", Variant => "variant", Upload => "upload" }
}

vocabulary! {
    /// Why (`deletions.reason`): a user's delete, the retention expiry, or an upload left
    /// incomplete.
    DeletionReason { Deleted => "deleted", Expired => "expired", Abandoned => "abandoned" }
}

vocabulary! {
    /// A post's transitions (`posts.event`); each happens at most once per post.
    PostEventKind { Created => "created", Published => "published", Failed => "failed", Deleted => "deleted" }
}

vocabulary! {
    /// A comment's transitions (`comments.event`).
    CommentEventKind { Created => "created", Deleted => "deleted" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_writes_the_lake_strings() {
        for s in AttemptStatus::ALL {
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        for k in DeletionKind::ALL {
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{k}\""));
        }
        for r in DeletionReason::ALL {
            assert_eq!(serde_json::to_string(r).unwrap(), format!("\"{r}\""));
        }
        for e in PostEventKind::ALL {
            assert_eq!(serde_json::from_str::<PostEventKind>(&format!("\"{e}\"")).unwrap(), *e);
            assert_eq!(e.as_str().parse::<PostEventKind>(), Ok(*e));
        }
        assert!("Published".parse::<PostEventKind>().is_err());
        for e in CommentEventKind::ALL {
            assert_eq!(serde_json::from_str::<CommentEventKind>(&format!("\"{e}\"")).unwrap(), *e);
        }
    }
}
