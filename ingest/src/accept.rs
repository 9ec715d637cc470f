//! The `Accept` header (RFC 9110 §12.5.1): which of the media types a variant is stored in
//! a request takes, and how much it wants each.
//!
//! - Each media range has a weight, `q` (0 to 1, three decimals; 1 when absent). A weight
//!   of 0 means "not acceptable".
//! - A more specific range overrides a less specific one, whatever their order:
//!   `image/webp` over `image/*` over `*/*`. So `image/*;q=0.5, image/webp;q=0` takes any
//!   image but WebP. Two ranges of the same specificity for one type (`image/png;q=0.2,
//!   image/png`): the higher weight counts.
//! - Parameters other than `q` are ignored (our media types have none), and so are
//!   elements that do not parse (a malformed range, `*/png`, a `q` outside the grammar):
//!   the rest of the header still counts.
//! - No `Accept` field, or one with no element that parses, takes anything (weight 1).

use axum::http::{header, HeaderMap};

/// A weight in thousandths: `q=0.5` is 500.
pub type Weight = u16;

/// The most a weight can be (`q=1`).
pub const FULL: Weight = 1000;

/// The media ranges of a request's `Accept` fields, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    ranges: Vec<MediaRange>,
}

/// One media range: `None` stands for `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaRange {
    kind: Option<String>,
    subtype: Option<String>,
    q: Weight,
}

impl MediaRange {
    /// How specifically this range names `kind/subtype` (2 exactly, 1 by its type, 0 as
    /// `*/*`), or `None` when it does not match it.
    fn specificity(&self, kind: &str, subtype: &str) -> Option<u8> {
        match (&self.kind, &self.subtype) {
            (None, _) => Some(0),
            (Some(k), None) => (k == kind).then_some(1),
            (Some(k), Some(s)) => (k == kind && s == subtype).then_some(2),
        }
    }
}

impl Accept {
    /// Every `Accept` field of a request (several fields are one list). Bytes that are
    /// not UTF-8 spoil only the elements they are in.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut accept = Accept::default();
        for value in headers.get_all(header::ACCEPT) {
            accept.add(&String::from_utf8_lossy(value.as_bytes()));
        }
        accept
    }

    /// One field's value.
    #[cfg(test)]
    pub fn parse(value: &str) -> Self {
        let mut accept = Accept::default();
        accept.add(value);
        accept
    }

    fn add(&mut self, value: &str) {
        self.ranges.extend(split_unquoted(value, ',').into_iter().filter_map(media_range));
    }

    /// The weight the request gives `media_type` (`image/webp`): that of the most specific
    /// range matching it, 0 when none does, [`FULL`] when the request states nothing.
    pub fn weight(&self, media_type: &str) -> Weight {
        if self.ranges.is_empty() {
            return FULL;
        }
        let (kind, subtype) = media_type.split_once('/').unwrap_or((media_type, ""));
        let (kind, subtype) = (kind.to_ascii_lowercase(), subtype.to_ascii_lowercase());
        self.ranges.iter().filter_map(|r| Some((r.specificity(&kind, &subtype)?, r.q))).max().map_or(0, |(_, q)| q)
    }

    /// Of `offers`, in order of preference, the one the request weighs highest; the
    /// earlier of equal weights. `None` when the request accepts none of them.
    pub fn choose<T>(&self, offers: impl IntoIterator<Item = T>, media_type: impl Fn(&T) -> &str) -> Option<T> {
        let mut best: Option<(Weight, T)> = None;
        for offer in offers {
            let w = self.weight(media_type(&offer));
            if w > 0 && best.as_ref().is_none_or(|(b, _)| w > *b) {
                best = Some((w, offer));
            }
        }
        best.map(|(_, offer)| offer)
    }
}

/// `s` cut at each `sep` outside a quoted string (where a backslash escapes the next
/// character), so that a parameter's quoted value cannot split an element.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Optional white space, as HTTP has it.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// One element of the list: `type/subtype` (or `type/*`, `*/*`) and its parameters, of
/// which only `q` counts. `None` for an empty or malformed element.
fn media_range(element: &str) -> Option<MediaRange> {
    let mut parts = split_unquoted(element, ';').into_iter();
    let range = trim_ows(parts.next()?);
    let (kind, subtype) = range.split_once('/')?;
    if !is_token(kind) || !is_token(subtype) {
        return None;
    }
    let (kind, subtype) = match (kind, subtype) {
        ("*", "*") => (None, None),
        ("*", _) => return None,
        (k, "*") => (Some(k.to_ascii_lowercase()), None),
        (k, s) => (Some(k.to_ascii_lowercase()), Some(s.to_ascii_lowercase())),
    };
    let mut q = None;
    for param in parts {
        if let Some((name, value)) = trim_ows(param).split_once('=') {
            if q.is_none() && name.eq_ignore_ascii_case("q") {
                q = Some(qvalue(value)?);
            }
        }
    }
    Some(MediaRange { kind, subtype, q: q.unwrap_or(FULL) })
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn qvalue(s: &str) -> Option<Weight> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0, |n, d| n * 10 + Weight::from(d - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(FULL),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: [&str; 3] = ["image/webp", "image/jpeg", "image/png"];

    fn pick(header: Option<&str>) -> Option<&'static str> {
        let accept = header.map(Accept::parse).unwrap_or_default();
        accept.choose(STORED, |m| m)
    }

    #[test]
    fn weights_follow_the_most_specific_range() {
        // RFC 9110's examples.
        let a = Accept::parse("audio/*; q=0.2, audio/basic");
        assert_eq!((a.weight("audio/basic"), a.weight("audio/mpeg"), a.weight("video/mp4")), (1000, 200, 0));
        let a = Accept::parse("text/plain; q=0.5, text/html,\t text/x-dvi; q=0.8, text/x-c");
        assert_eq!(
            [a.weight("text/plain"), a.weight("text/html"), a.weight("text/x-dvi"), a.weight("text/x-c")],
            [500, 1000, 800, 1000]
        );
        // A more specific range wins whatever the order.
        for h in ["image/*;q=0.5, image/webp;q=0", "image/webp;q=0, image/*;q=0.5", "*/*, image/*;q=0.5, image/webp;q=0"] {
            let a = Accept::parse(h);
            assert_eq!((a.weight("image/webp"), a.weight("image/png")), (0, 500), "{h}");
        }
        let a = Accept::parse("*/*;q=0.1, image/*;q=0");
        assert_eq!((a.weight("image/png"), a.weight("text/plain")), (0, 100));
        // Equally specific: the higher weight.
        assert_eq!(Accept::parse("image/png;q=0.2, image/png").weight("image/png"), 1000);
        // Case does not matter; parameters other than q do not either.
        let a = Accept::parse("IMAGE/WebP;Q=0.7;charset=\"x\", image/png;level=1");
        assert_eq!((a.weight("image/webp"), a.weight("image/png")), (700, 1000));
        // No Accept at all: anything.
        assert_eq!(Accept::default().weight("image/avif"), FULL);
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        for (s, q) in
            [("0", 0), ("0.", 0), ("0.5", 500), ("0.05", 50), ("0.001", 1), ("0.999", 999), ("1", 1000), ("1.000", 1000)]
        {
            assert_eq!(qvalue(s), Some(q), "{s}");
        }
        for s in ["", "2", "1.5", "1.001", "0.0001", "-0", ".5", "0.a", "01", " 0.5", "+1", "0x1", "0.５"] {
            assert_eq!(qvalue(s), None, "{s:?}");
        }
    }

    #[test]
    fn malformed_elements_are_ignored_and_the_rest_counts() {
        let a = Accept::parse("image/webp;q=2, image/png;q=0.3, */png, image, /x, image/, ima ge/png, ,, image/jpeg;q=abc");
        assert_eq!([a.weight("image/webp"), a.weight("image/png"), a.weight("image/jpeg")], [0, 300, 0]);
        // A comma inside a quoted parameter does not split the element.
        let a = Accept::parse(r#"image/webp;x="a,image/png;q=1\",b", image/jpeg;q=0.5"#);
        assert_eq!([a.weight("image/webp"), a.weight("image/png"), a.weight("image/jpeg")], [1000, 0, 500]);
        // Nothing usable: as if there were no header.
        for h in ["", " ", "garbage", "*/png;q=0.5", "image/webp;q=7"] {
            assert_eq!(Accept::parse(h).weight("image/webp"), FULL, "{h:?}");
        }
        // Parameters without a value, or several q: the first q counts.
        assert_eq!(Accept::parse("image/webp;foo;q=0.4;q=0.9").weight("image/webp"), 400);
    }

    #[test]
    fn the_highest_weight_wins_and_the_preset_breaks_ties() {
        assert_eq!(pick(None), Some("image/webp"), "no header: the preferred format");
        assert_eq!(pick(Some("*/*")), Some("image/webp"));
        assert_eq!(pick(Some("image/*")), Some("image/webp"));
        assert_eq!(pick(Some("image/png, image/jpeg")), Some("image/jpeg"), "a tie: the preset's order");
        assert_eq!(pick(Some("image/webp;q=0.8, image/png;q=0.9, image/jpeg;q=0.5")), Some("image/png"));
        assert_eq!(pick(Some("image/*;q=0.5, image/webp;q=0")), Some("image/jpeg"));
        assert_eq!(pick(Some("image/avif, image/webp;q=0.1, */*;q=0.05")), Some("image/webp"));
        assert_eq!(pick(Some("text/html, application/xhtml+xml, */*;q=0.8")), Some("image/webp"), "a browser's page Accept");
        assert_eq!(pick(Some("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8")), Some("image/webp"));
        assert_eq!(pick(Some("image/gif")), None);
        assert_eq!(pick(Some("*/*;q=0")), None);
        assert_eq!(pick(Some("image/*;q=0.9, image/webp;q=0, image/jpeg;q=0, image/png;q=0")), None);
    }

    #[test]
    fn several_fields_are_one_list() {
        let mut headers = HeaderMap::new();
        headers.append(header::ACCEPT, "image/webp;q=0".parse().unwrap());
        headers.append(header::ACCEPT, "image/*;q=0.5".parse().unwrap());
        headers.append(header::ACCEPT, axum::http::HeaderValue::from_bytes(b"image/png;q=0.6, \xff/\xfe").unwrap());
        let a = Accept::from_headers(&headers);
        assert_eq!([a.weight("image/webp"), a.weight("image/jpeg"), a.weight("image/png")], [0, 500, 600]);
        assert_eq!(Accept::from_headers(&HeaderMap::new()), Accept::default());
    }

    use proptest::prelude::*;

    /// A media range, well formed or not, with or without a weight and parameters; its
    /// quotes balanced and no comma outside them, so that it stays one element.
    fn element() -> impl Strategy<Value = String> {
        let range = prop_oneof![
            Just("*/*".to_string()),
            "(image|text|IMAGE)/\\*",
            "(image|Image|text)/(webp|png|jpeg|avif|gif|x-c)",
            "[a-z*/ ;=.0-9]{0,12}",
        ];
        let q = prop_oneof![Just(String::new()), "; ?[qQ]=(0(\\.[0-9]{0,3})?|1(\\.0{0,3})?)", ";q=[a-z0-9. ]{0,5}"];
        let param = prop_oneof![Just(String::new()), ";[a-z]{1,5}=(\"[a-z ,;=]{0,6}\"|[a-z]{1,4})"];
        (range, q, param).prop_map(|(r, q, p)| format!("{r}{p}{q}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Any header: no panic; weights within 0..=1; the choice is an offer the request
        /// takes, weighed highest, the first such.
        #[test]
        fn any_header(h in prop_oneof![any::<String>(), proptest::collection::vec(element(), 0..6).prop_map(|v| v.join(","))]) {
            let a = Accept::parse(&h);
            let weights: Vec<Weight> = STORED.iter().map(|m| a.weight(m)).collect();
            prop_assert!(weights.iter().all(|w| *w <= FULL));
            match a.choose(STORED, |m| m) {
                Some(m) => {
                    let i = STORED.iter().position(|s| *s == m).unwrap();
                    let best = *weights.iter().max().unwrap();
                    prop_assert!(weights[i] > 0 && weights[i] == best);
                    prop_assert!(weights[..i].iter().all(|w| *w < best), "an earlier offer weighs as much: {weights:?}");
                }
                None => prop_assert!(weights.iter().all(|w| *w == 0)),
            }
        }

        /// The order of the elements does not matter: precedence is specificity, not order.
        #[test]
        fn order_does_not_matter(elements in proptest::collection::vec(element(), 0..6)) {
            let forward = Accept::parse(&elements.join(","));
            let mut reversed = elements.clone();
            reversed.reverse();
            let backward = Accept::parse(&reversed.join(","));
            for m in STORED.iter().chain(&["text/x-c", "image/gif", "audio/basic"]) {
                prop_assert_eq!(forward.weight(m), backward.weight(m), "{}", m);
            }
        }
    }
}
