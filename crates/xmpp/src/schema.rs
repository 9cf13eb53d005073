//! Reading and writing the item schemas' fields as upstream's generated
//! code does (`XmlParse` / `Encode` generated from the `.xsd` files).
//!
//! * An integer field is read like `strtoul(text, &end, 10)` followed by
//!   trailing whitespace: an empty text reads as 0, `"ZZZZZZ"` fails the
//!   whole item (that is how upstream rejects `bad_*_item` fixtures).
//! * A boolean is `true` only for the exact text `"true"`.
//! * Unknown elements are ignored; a repeated element of a scalar field
//!   overwrites, of a list field appends.
//! * Encoding writes every field in schema order, even empty ones (an
//!   empty string as `<x></x>`, an empty list as `<x />`).

use crate::xml::Element;

/// The field that failed to read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad value {value:?} for <{field}>")]
pub struct SchemaError {
    pub field: String,
    pub value: String,
}

/// `strtoul` base 10, as upstream's `ParseInteger`: leading whitespace and
/// a sign allowed, trailing whitespace allowed, an empty text is 0.
pub fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if !digits[end..].trim().is_empty() {
        return None;
    }
    if end == 0 {
        // strtoul consumed nothing: `end` is the whole input, which is
        // then only valid if it was empty (or only whitespace).
        return if t.is_empty() { Some(0) } else { None };
    }
    let v: i64 = digits[..end].parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

pub(crate) fn int(el: &Element) -> Result<i64, SchemaError> {
    parse_int(el.value()).ok_or_else(|| SchemaError {
        field: el.name.clone(),
        value: el.value().to_string(),
    })
}

pub(crate) fn boolean(el: &Element) -> bool {
    el.value() == "true"
}

pub(crate) fn string(el: &Element) -> String {
    el.value().to_string()
}

/// The items of a list wrapper (`<tag-list><tag>1</tag>…`).
pub(crate) fn int_list(el: &Element, item: &str) -> Result<Vec<i64>, SchemaError> {
    el.children_named(item).map(int).collect()
}

pub(crate) fn string_list(el: &Element, item: &str) -> Vec<String> {
    el.children_named(item).map(string).collect()
}

pub(crate) fn leaf(name: &str, v: impl ToString) -> Element {
    Element::leaf(name, v)
}

pub(crate) fn list<T: ToString>(name: &str, item: &str, v: &[T]) -> Element {
    let mut e = Element::new(name);
    for x in v {
        e.push(Element::leaf(item, x.to_string()));
    }
    e
}

/// The `<entry>` of an `<item>`, if any (upstream parses the item's
/// children and finds `entry` among them).
pub(crate) fn entry(item: &Element) -> Option<&Element> {
    item.child("entry")
}

#[cfg(test)]
mod tests {
    use super::parse_int;

    #[test]
    fn integers_as_strtoul() {
        assert_eq!(parse_int("47"), Some(47));
        assert_eq!(parse_int(" 12 \n"), Some(12));
        assert_eq!(parse_int(""), Some(0));
        assert_eq!(parse_int("+3"), Some(3));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("ZZZZZZ"), None);
        assert_eq!(parse_int("10000-20000"), None);
        assert_eq!(parse_int("1 2"), None);
    }
}
