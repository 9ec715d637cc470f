//! Keyset paging, written once for every listing (images, posts, comments): the page size,
//! the cursors, and cutting a page from one row more than asked.
//!
//! A cursor names the last item of its page. An id cursor is the item's UUID as 32 hex
//! digits; a post listing's cursor also says its order: `n{id}` (newest first) or
//! `c{count}.{id}` (most comments first), so a cursor of one order is refused by the other.

use crate::error::IngestError;
use imagelake_core::post::{PostCursor, PostOrder};

/// `limit`: 1 to `max`, `default` when absent.
pub(crate) fn limit(asked: Option<usize>, default: usize, max: usize) -> Result<usize, IngestError> {
    let limit = asked.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(IngestError::BadRequest("invalid_limit", format!("limit must be between 1 and {max}")));
    }
    Ok(limit)
}

/// Cuts a page from `rows`, read as `limit + 1` rows: the extra row only tells that there
/// is a next page, which starts after the page's last item (`cursor_of` names it).
pub(crate) fn page<T>(mut rows: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(cursor_of);
    (rows, next)
}

fn invalid() -> IngestError {
    IngestError::BadRequest("invalid_cursor", "cursor is not one this API returned for this listing".into())
}

/// An id (a hyphenated UUID) as a cursor: 32 hex digits.
pub(crate) fn id_cursor(id: &str) -> String {
    uuid::Uuid::try_parse(id).map(|u| u.simple().to_string()).unwrap_or_default()
}

/// The id an id cursor names, hyphenated as ids are stored.
pub(crate) fn parse_id_cursor(c: &str) -> Result<String, IngestError> {
    // 32 characters: only the simple form, not a hyphenated, braced or URN one.
    if c.len() != 32 {
        return Err(invalid());
    }
    uuid::Uuid::try_parse(c).map(|u| u.hyphenated().to_string()).map_err(|_| invalid())
}

/// A post listing's cursor for the post `id` with `comment_count` comments.
pub(crate) fn post_cursor(order: PostOrder, comment_count: u64, id: &str) -> String {
    match order {
        PostOrder::Newest => format!("n{}", id_cursor(id)),
        PostOrder::Comments => format!("c{comment_count}.{}", id_cursor(id)),
    }
}

pub(crate) fn parse_post_cursor(order: PostOrder, c: &str) -> Result<PostCursor, IngestError> {
    match (order, c.split_at_checked(1)) {
        (PostOrder::Newest, Some(("n", id))) => Ok(PostCursor { comment_count: 0, id: parse_id_cursor(id)? }),
        (PostOrder::Comments, Some(("c", rest))) => {
            let (count, id) = rest.split_once('.').ok_or_else(invalid)?;
            let comment_count = count.parse::<u64>().map_err(|_| invalid())?;
            // The database counts in a BIGINT.
            if comment_count > i64::MAX as u64 {
                return Err(invalid());
            }
            Ok(PostCursor { comment_count, id: parse_id_cursor(id)? })
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(r: Result<impl std::fmt::Debug, IngestError>) -> &'static str {
        r.expect_err("refused").code()
    }

    fn is_hex32(s: &str) -> bool {
        s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// Any id, hyphenated lowercase as stored.
    fn any_id() -> impl Strategy<Value = String> {
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).hyphenated().to_string())
    }

    /// Strings near the cursors' shapes, so that the interesting branches are reached.
    fn cursorish() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[nc]?[0-9a-fA-F]{30,34}",
            "c[+-]?[0-9]{0,21}\\.[0-9a-fA-F]{31,33}",
            "[nc]?[0-9a-fA-FxX{}.:-]{30,46}",
            (any_id(), any::<bool>()).prop_map(|(id, upper)| {
                let s = id_cursor(&id);
                if upper {
                    s.to_uppercase()
                } else {
                    s
                }
            }),
        ]
    }

    #[test]
    fn examples() {
        let id = "0190b5a0-0000-7000-8000-00000000abcd";
        assert_eq!(id_cursor(id), "0190b5a000007000800000000000abcd");
        assert_eq!(parse_id_cursor("0190B5A000007000800000000000ABCD").unwrap(), id);
        // Other spellings of a UUID are not cursors this API returns.
        for bad in [id, "{0190b5a0-0000-7000-8000-00000000abcd}", "", "0190b5a0000070008000000000000abcd"] {
            assert_eq!(code(parse_id_cursor(bad)), "invalid_cursor", "{bad}");
        }
        assert_eq!(post_cursor(PostOrder::Comments, 7, id), "c7.0190b5a000007000800000000000abcd");
        for bad in ["", "n", "x123", "c7", "c-1.00000000000000000000000000000000", "c99999999999999999999.0", "né"] {
            assert_eq!(code(parse_post_cursor(PostOrder::Comments, bad)), "invalid_cursor", "{bad}");
            assert_eq!(code(parse_post_cursor(PostOrder::Newest, bad)), "invalid_cursor", "{bad}");
        }
        assert_eq!(code(limit(Some(0), 20, 100)), "invalid_limit");
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert_eq!(page(vec![1, 2, 3], 2, |n| n.to_string()), (vec![1, 2], Some("2".into())));
        assert_eq!(page(vec![1, 2], 2, |n| n.to_string()), (vec![1, 2], None));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// make → parse is the identity for every id.
        #[test]
        fn id_cursors_round_trip(id in any_id()) {
            let c = id_cursor(&id);
            prop_assert!(is_hex32(&c), "{c}");
            prop_assert_eq!(parse_id_cursor(&c).unwrap(), id);
        }

        /// A string is an id cursor exactly when it is 32 hex digits (either case), and then
        /// it names the id it spells.
        #[test]
        fn id_cursors_parse_exactly_32_hex_digits(s in cursorish()) {
            match parse_id_cursor(&s) {
                Ok(id) => {
                    prop_assert!(is_hex32(&s), "accepted {s:?}");
                    prop_assert_eq!(id_cursor(&id), s.to_ascii_lowercase());
                }
                Err(e) => {
                    prop_assert!(!is_hex32(&s), "refused {s:?}");
                    prop_assert_eq!(e.code(), "invalid_cursor");
                }
            }
        }

        /// make → parse is the identity for both orders, and each order refuses the other's.
        #[test]
        fn post_cursors_round_trip(id in any_id(), count in 0..=i64::MAX as u64) {
            let newest = post_cursor(PostOrder::Newest, count, &id);
            prop_assert_eq!(parse_post_cursor(PostOrder::Newest, &newest).unwrap(), PostCursor { comment_count: 0, id: id.clone() });
            let comments = post_cursor(PostOrder::Comments, count, &id);
            prop_assert_eq!(parse_post_cursor(PostOrder::Comments, &comments).unwrap(), PostCursor { comment_count: count, id });
            prop_assert_eq!(code(parse_post_cursor(PostOrder::Comments, &newest)), "invalid_cursor");
            prop_assert_eq!(code(parse_post_cursor(PostOrder::Newest, &comments)), "invalid_cursor");
        }

        /// A count the database cannot hold is refused.
        #[test]
        fn post_cursors_refuse_counts_past_bigint(id in any_id(), count in (i64::MAX as u64 + 1)..=u64::MAX) {
            let c = post_cursor(PostOrder::Comments, count, &id);
            prop_assert_eq!(code(parse_post_cursor(PostOrder::Comments, &c)), "invalid_cursor");
        }

        /// Any string parses or is `invalid_cursor`; what parses is what it spells.
        #[test]
        fn post_cursors_parse_or_refuse(s in cursorish(), comments in any::<bool>()) {
            let order = if comments { PostOrder::Comments } else { PostOrder::Newest };
            match parse_post_cursor(order, &s) {
                Ok(c) => {
                    let (tag, rest) = s.split_at(1);
                    if comments {
                        prop_assert_eq!(tag, "c");
                        let (count, id) = rest.split_once('.').unwrap();
                        prop_assert_eq!(count.trim_start_matches('+').trim_start_matches('0').to_string(),
                            if c.comment_count == 0 { String::new() } else { c.comment_count.to_string() });
                        prop_assert_eq!(id.to_ascii_lowercase(), id_cursor(&c.id));
                    } else {
                        prop_assert_eq!(tag, "n");
                        prop_assert_eq!(c.comment_count, 0);
                        prop_assert_eq!(rest.to_ascii_lowercase(), id_cursor(&c.id));
                    }
                    prop_assert!(c.comment_count <= i64::MAX as u64);
                    prop_assert_eq!(parse_post_cursor(order, &post_cursor(order, c.comment_count, &c.id)).unwrap(), c);
                }
                Err(e) => prop_assert_eq!(e.code(), "invalid_cursor"),
            }
        }

        /// `limit` is what was asked when it is within 1..=max, the default when absent,
        /// and `invalid_limit` otherwise.
        #[test]
        fn limits(asked in proptest::option::of(prop_oneof![0..2000usize, any::<usize>()]),
                  default in 1..100usize, extra in 0..1000usize) {
            let max = default + extra;
            match (asked, limit(asked, default, max)) {
                (None, r) => prop_assert_eq!(r.unwrap(), default),
                (Some(n), Ok(l)) => prop_assert!(l == n && (1..=max).contains(&n)),
                (Some(n), Err(e)) => {
                    prop_assert!(n == 0 || n > max, "{n} refused");
                    prop_assert_eq!(e.code(), "invalid_limit");
                }
            }
        }

        /// A page of `limit + 1` rows loses the extra row and names its last row; a shorter
        /// read is the last page. Paging through any listing visits each row once.
        #[test]
        fn pages_cut_and_chain(total in 0..300usize, limit in 1..50usize) {
            let rows: Vec<usize> = (0..total).collect();
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                // The store's answer: up to `limit + 1` rows after the cursor.
                let start = after.as_ref().map_or(0, |c| c.parse::<usize>().unwrap() + 1);
                let read: Vec<usize> = rows.iter().copied().skip(start).take(limit + 1).collect();
                let had = read.len();
                let (items, next) = page(read, limit, |n| n.to_string());
                prop_assert_eq!(items.len(), had.min(limit));
                prop_assert_eq!(next.is_some(), had > limit);
                if let Some(n) = &next {
                    prop_assert_eq!(n, &items.last().unwrap().to_string());
                }
                seen.extend(items);
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            prop_assert_eq!(seen, rows);
        }
    }
}
