//! YAML streams (`---`-separated documents) to and from trees, read the way Kubernetes and helm
//! read them: YAML 1.1 (Go's yaml.v2), where a plain `0755` is the octal 493, a plain `yes`, `on`
//! or `y` is true and `1_000` is 1000, while YAML 1.2 readers (serde_yaml_ng) take those for
//! strings. Quoted scalars are strings in both.

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use serde_yaml_ng::{Mapping, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Every non-empty document of `yaml`. Rendered charts do carry repeated keys, which Kubernetes
/// accepts by keeping the last one; so does this.
pub fn parse_stream(yaml: &str) -> Result<Vec<Value>> {
    let mut tree = TreeBuilder::default();
    Parser::new_from_str(yaml)
        .load(&mut tree, true)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("YAML document {} is not valid", tree.documents.max(1)))?;
    Ok(tree.docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The documents as a YAML stream of JSON documents, one a line. JSON quotes every string, so
/// YAML 1.1 readers (Kubernetes and helm) keep `no`, `off` or `1_000` strings; a YAML 1.2 emitter
/// writes them bare and those readers take them for booleans and numbers.
pub fn to_stream(docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for doc in docs {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string(doc).context("a document that JSON cannot hold")?);
        out.push('\n');
    }
    Ok(out)
}

/// Builds trees from the parser's events.
#[derive(Default)]
struct TreeBuilder {
    docs: Vec<Value>,
    /// Collections being read, innermost last, with their anchors.
    open: Vec<(Open, usize)>,
    anchors: HashMap<usize, Value>,
    /// Documents begun so far, for error messages.
    documents: usize,
}

enum Open {
    Sequence(Vec<Value>),
    /// A mapping and the key whose value comes next.
    Mapping(Mapping, Option<Value>),
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, _mark: Marker) {
        match event {
            Event::DocumentStart => self.documents += 1,
            Event::Scalar(text, style, anchor, tag) => {
                let explicit_string = tag.is_some_and(|t| t.suffix == "str");
                let value = if style == TScalarStyle::Plain && !explicit_string {
                    resolve_plain(&text)
                } else {
                    Value::String(text)
                };
                self.add(value, anchor);
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                self.add(value, 0);
            }
            Event::SequenceStart(anchor, _) => self.open.push((Open::Sequence(Vec::new()), anchor)),
            Event::MappingStart(anchor, _) => self.open.push((Open::Mapping(Mapping::new(), None), anchor)),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((collection, anchor)) = self.open.pop() {
                    let value = match collection {
                        Open::Sequence(items) => Value::Sequence(items),
                        Open::Mapping(map, _) => Value::Mapping(map),
                    };
                    self.add(value, anchor);
                }
            }
            _ => {}
        }
    }
}

impl TreeBuilder {
    fn add(&mut self, value: Value, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.open.last_mut() {
            None => self.docs.push(value),
            Some((Open::Sequence(items), _)) => items.push(value),
            Some((Open::Mapping(map, key), _)) => match key.take() {
                None => *key = Some(key_string(value)),
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
    }
}

/// Keys as Kubernetes' YAML-to-JSON conversion makes them: `true`, `80` and `null` become strings.
fn key_string(key: Value) -> Value {
    match key {
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Null => Value::String("null".into()),
        other => other,
    }
}

/// A plain scalar as YAML 1.1 (Go's yaml.v2) resolves it.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => return Value::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Value::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Number(f64::INFINITY.into()),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Number(f64::NEG_INFINITY.into()),
        ".nan" | ".NaN" | ".NAN" => return Value::Number(f64::NAN.into()),
        _ => {}
    }
    let bare = text.replace('_', "");
    if let Some(n) = integer(&bare) {
        return Value::Number(n);
    }
    let float_chars = bare.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if float_chars && bare.chars().any(|c| c.is_ascii_digit()) {
        if let Ok(f) = bare.parse::<f64>() {
            return Value::Number(f.into());
        }
    }
    Value::String(text.to_string())
}

/// Decimal, `0x` hex, `0b` binary, and octal with a leading `0` (or `0o`), optionally signed.
fn integer(text: &str) -> Option<Number> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, body) = if let Some(b) = digits.strip_prefix("0x") {
        (16, b)
    } else if let Some(b) = digits.strip_prefix("0b") {
        (2, b)
    } else if let Some(b) = digits.strip_prefix("0o") {
        (8, b)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if negative {
        Some(Number::from(0i64.checked_sub_unsigned(magnitude)?))
    } else {
        Some(Number::from(magnitude))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_as_yaml_1_1_and_quoted_ones_stay_strings() {
        let docs = parse_stream(
            "a: 0755\nb: \"0755\"\nc: yes\nd: 'no'\ne: 1_000\nf: 0x1F\ng: -12\nh: 1.5e3\ni: ~\nj: 08\nk: !!str 12\non: x\n",
        )
        .unwrap();
        let d = &docs[0];
        assert_eq!(d["a"], Value::Number(493.into()));
        assert_eq!(d["b"], Value::String("0755".into()));
        assert_eq!(d["c"], Value::Bool(true));
        assert_eq!(d["d"], Value::String("no".into()));
        assert_eq!(d["e"], Value::Number(1000.into()));
        assert_eq!(d["f"], Value::Number(31.into()));
        assert_eq!(d["g"], Value::Number((-12).into()));
        assert_eq!(d["h"], Value::Number(1500.0.into()));
        assert_eq!(d["i"], Value::Null);
        assert_eq!(d["j"], Value::Number(8.0.into()), "not octal: a float, as Go reads it");
        assert_eq!(d["k"], Value::String("12".into()));
        assert_eq!(d["true"], Value::String("x".into()), "keys become strings, as Kubernetes makes them");
    }

    #[test]
    fn anchors_and_aliases_are_copied() {
        let docs = parse_stream("a: &x {b: 1}\nc: *x\n").unwrap();
        assert_eq!(docs[0]["c"]["b"], Value::Number(1.into()));
    }

    #[test]
    fn strings_that_yaml_1_1_reads_as_booleans_or_numbers_stay_quoted() {
        let docs =
            parse_stream("env: [{name: A, value: \"no\"}, {name: B, value: \"off\"}, {name: C, value: \"1_000\"}]\n")
                .unwrap();
        let out = to_stream(&docs).unwrap();
        for quoted in [r#""value":"no""#, r#""value":"off""#, r#""value":"1_000""#] {
            assert!(out.contains(quoted), "{out}");
        }
        assert_eq!(parse_stream(&out).unwrap(), docs);
    }

    #[test]
    fn repeated_keys_keep_the_last_and_empty_documents_are_dropped() {
        let docs = parse_stream("---\n# only a comment\n---\nkind: ConfigMap\ndata:\n  a: 1\n  a: two\n---\n").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["data"]["a"], Value::String("two".into()));
        let again = parse_stream(&to_stream(&docs).unwrap()).unwrap();
        assert_eq!(again, docs);
        let err = parse_stream("a: 1\n---\nb: [\n").unwrap_err();
        assert!(format!("{err:#}").contains("document 2"), "{err:#}");
    }
}
