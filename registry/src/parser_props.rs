//! Property tests of the parsers that read what clients send: Range and Content-Range headers,
//! API paths and names, pagination queries. None may panic on any input, and what each accepts
//! keeps the invariants the handlers rely on.

use std::collections::HashMap;

use proptest::prelude::*;

use crate::distribution::{paginate, parse_content_range, parse_target, Target};
use crate::names::{check_name, split_route, valid_name, valid_tag, ManifestRef};
use crate::routes::parse_range;

/// Text built from the pieces these parsers look for, so that cases reach past the first check.
fn tokens(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![prop::sample::select(pieces).prop_map(str::to_string), ".{0,4}"], 0..12)
        .prop_map(|parts| parts.concat())
}

const RANGE_PIECES: &[&str] =
    &["bytes=", "bytes ", "-", "0", "1", "9", "18446744073709551615", "18446744073709551616", "/", "*", ",", " "];
const PATH_PIECES: &[&str] = &[
    "/",
    "a",
    "b0",
    "..",
    ".",
    "_",
    "__",
    "-",
    "blobs",
    "uploads",
    "manifests",
    "tags/list",
    "referrers",
    "_catalog",
    "sha256:",
    "sha512:",
    "0123456789abcdef",
    "A",
    ":",
    "%2F",
    "\u{e9}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn ranges_stay_inside_the_blob(text in tokens(RANGE_PIECES), total in prop_oneof![Just(0u64), Just(1), 0..1000u64, Just(u64::MAX)]) {
        if let Some((start, end)) = parse_range(&text, total) {
            prop_assert!(start <= end && end < total, "{text:?} over {total} gave {start}-{end}");
        }
    }

    #[test]
    fn content_ranges_are_ordered(text in tokens(RANGE_PIECES)) {
        if let Some((start, end)) = parse_content_range(&text) {
            prop_assert!(start <= end, "{text:?} gave {start}-{end}");
        }
    }

    #[test]
    fn content_ranges_round_trip(start in any::<u64>(), len in any::<u64>()) {
        let end = start.saturating_add(len);
        prop_assert_eq!(parse_content_range(&format!("{start}-{end}")), Some((start, end)));
        prop_assert_eq!(parse_content_range(&format!("bytes {start}-{end}/*")), Some((start, end)));
    }

    #[test]
    fn api_paths_yield_only_checked_names(rest in tokens(PATH_PIECES)) {
        let named = match parse_target(&rest) {
            Ok(Target::Tags(n) | Target::Uploads(n) | Target::Manifest(n, _) | Target::Blob(n, _)
                | Target::Upload(n, _) | Target::Referrers(n, _)) => Some(n),
            Ok(Target::Catalog) | Err(_) => None,
        };
        if let Some(n) = named {
            // Handlers check every name before it reaches storage; a name that passes is safe there.
            if check_name(&n).is_ok() {
                prop_assert!(valid_name(&n));
                prop_assert!(!n.split('/').any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with('_')), "{n:?}");
            }
        }
    }

    #[test]
    fn view_routes_split_into_a_valid_name_and_the_rest(rest in tokens(PATH_PIECES)) {
        if let Ok((name, [a, b])) = split_route::<2>(&rest, "usage") {
            prop_assert!(valid_name(name));
            prop_assert_eq!(format!("{name}/{a}/{b}"), rest);
        }
    }

    #[test]
    fn references_are_tags_or_digests(text in tokens(PATH_PIECES)) {
        match ManifestRef::parse(&text) {
            Ok(ManifestRef::Tag(t)) => prop_assert!(valid_tag(&t) && !t.contains('/')),
            Ok(ManifestRef::Digest(d)) => prop_assert!(["sha256", "sha512"].contains(&d.algorithm().as_ref())),
            Err(_) => {}
        }
    }

    #[test]
    fn pages_hold_at_most_n_entries(
        all in prop::collection::btree_set("[a-c]{1,3}", 0..20),
        n in prop_oneof![Just(None), "-?[0-9]{1,3}".prop_map(Some), ".{0,3}".prop_map(Some)],
        last in prop::option::of("[a-c]{0,3}"),
    ) {
        let mut query = HashMap::new();
        if let Some(n) = &n {
            query.insert("n".to_string(), n.clone());
        }
        if let Some(l) = &last {
            query.insert("last".to_string(), l.clone());
        }
        let all: Vec<String> = all.into_iter().collect();
        if let Ok((page, link)) = paginate(all.clone(), &query, "/v2/_catalog") {
            let limit = n.as_deref().map(|n| n.parse::<usize>().expect("a refused n gives no page"));
            prop_assert!(limit.is_none_or(|l| page.len() <= l));
            prop_assert!(page.iter().all(|p| last.as_ref().is_none_or(|l| p > l)));
            prop_assert!(link.is_none() || limit.is_some());
        }
    }
}
