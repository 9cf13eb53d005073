//! An owned element tree over `quick-xml`, and a writer that prints it the
//! way upstream's pugixml does.
//!
//! Upstream builds and reads every message with pugixml, so two of its
//! habits matter on the wire: an element without children or text prints
//! as `<name attr="v" />` (a space before the slash), and an element whose
//! only content is text prints on one line, `<af>1</af>` (an empty string
//! gives `<mac></mac>`). Indentation is whatever string the caller passes
//! per level (upstream's agent passes `""`, the control node `"\t"`), and
//! every element ends its line.
//!
//! Reading keeps what pugixml's default parse keeps: element names and
//! attributes as written (prefixes included, no namespace processing), and
//! the text of an element unless it is whitespace only. Comments,
//! processing instructions and the XML declaration are skipped.

use quick_xml::events::Event;
use quick_xml::Reader;

/// One element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The element's character data; `None` when it has none (pugixml's
    /// `<x />`), `Some("")` for an explicitly empty text (`<x></x>`).
    pub text: Option<String>,
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("XML: {0}")]
    Syntax(String),
    #[error("XML: no root element")]
    Empty,
    #[error("XML: content after the root element")]
    Trailing,
    #[error("XML: unknown entity &{0};")]
    Entity(String),
}

impl Element {
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ..Element::default()
        }
    }

    /// Builder: add an attribute.
    pub fn with_attr(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.attrs.push((k.into(), v.into()));
        self
    }

    /// Builder: add a child.
    pub fn with_child(mut self, c: Element) -> Self {
        self.children.push(c);
        self
    }

    /// Builder: set the text.
    pub fn with_text(mut self, t: impl Into<String>) -> Self {
        self.text = Some(t.into());
        self
    }

    /// A text-only element `<name>text</name>`.
    pub fn leaf(name: impl Into<String>, text: impl ToString) -> Self {
        Element::new(name).with_text(text.to_string())
    }

    pub fn push(&mut self, c: Element) {
        self.children.push(c);
    }

    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text, or "" (pugixml's `child_value()`).
    pub fn value(&self) -> &str {
        self.text.as_deref().unwrap_or("")
    }

    /// The first element named `name` in document order, this one
    /// included (pugixml's `find_node` as upstream uses it).
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// Read one document: optional declaration, comments and whitespace
    /// around exactly one root element.
    pub fn parse(s: &str) -> Result<Element, XmlError> {
        let mut r = Reader::from_str(s);
        r.config_mut().trim_text(false);
        r.config_mut().check_end_names = true;
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        loop {
            let ev = r
                .read_event()
                .map_err(|e| XmlError::Syntax(format!("{e} at byte {}", r.buffer_position())))?;
            match ev {
                Event::Start(e) => {
                    if root.is_some() && stack.is_empty() {
                        return Err(XmlError::Trailing);
                    }
                    stack.push(start_element(&e)?);
                }
                Event::Empty(e) => {
                    if root.is_some() && stack.is_empty() {
                        return Err(XmlError::Trailing);
                    }
                    let el = start_element(&e)?;
                    match stack.last_mut() {
                        Some(p) => p.children.push(el),
                        None => root = Some(el),
                    }
                }
                Event::End(_) => {
                    let Some(mut el) = stack.pop() else {
                        return Err(XmlError::Syntax("unbalanced end tag".into()));
                    };
                    if el.text.as_deref().is_some_and(is_ws) {
                        el.text = None;
                    }
                    match stack.last_mut() {
                        Some(p) => p.children.push(el),
                        None => root = Some(el),
                    }
                }
                Event::Text(t) => {
                    let txt = t
                        .decode()
                        .map_err(|e| XmlError::Syntax(e.to_string()))?
                        .into_owned();
                    match stack.last_mut() {
                        Some(p) => append_text(p, &txt),
                        None if is_ws(&txt) => {}
                        None => return Err(XmlError::Syntax("text outside the root".into())),
                    }
                }
                Event::CData(t) => {
                    let txt = String::from_utf8_lossy(&t).into_owned();
                    if let Some(p) = stack.last_mut() {
                        append_text(p, &txt);
                    }
                }
                Event::GeneralRef(g) => {
                    let name = g.decode().map_err(|e| XmlError::Syntax(e.to_string()))?;
                    let ch = resolve_entity(&name)?;
                    match stack.last_mut() {
                        Some(p) => append_text(p, &ch),
                        None => return Err(XmlError::Syntax("reference outside the root".into())),
                    }
                }
                Event::Eof => break,
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if !stack.is_empty() {
            return Err(XmlError::Syntax("unclosed element".into()));
        }
        root.ok_or(XmlError::Empty)
    }

    /// Print as pugixml's `print(writer, indent, format_default)` does,
    /// starting at `depth` levels of `indent`.
    pub fn write_pugi(&self, out: &mut String, indent: &str, depth: usize) {
        for _ in 0..depth {
            out.push_str(indent);
        }
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            escape_into(out, v, true);
            out.push('"');
        }
        if self.children.is_empty() {
            match &self.text {
                None => out.push_str(" />\n"),
                Some(t) => {
                    out.push('>');
                    escape_into(out, t, false);
                    out.push_str("</");
                    out.push_str(&self.name);
                    out.push_str(">\n");
                }
            }
            return;
        }
        out.push_str(">\n");
        if let Some(t) = self.text.as_deref().filter(|t| !t.is_empty()) {
            for _ in 0..=depth {
                out.push_str(indent);
            }
            escape_into(out, t, false);
            out.push('\n');
        }
        for c in &self.children {
            c.write_pugi(out, indent, depth + 1);
        }
        for _ in 0..depth {
            out.push_str(indent);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push_str(">\n");
    }

    /// The pugixml form with `indent` per level.
    pub fn to_pugi(&self, indent: &str) -> String {
        let mut s = String::new();
        self.write_pugi(&mut s, indent, 0);
        s
    }
}

fn is_ws(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn append_text(el: &mut Element, t: &str) {
    match &mut el.text {
        Some(s) => s.push_str(t),
        None => el.text = Some(t.to_string()),
    }
}

/// An XML name (quick-xml takes whatever sits between `<` and the first
/// blank as the name, `<` and control characters included, which would
/// then print as a different document).
fn xml_name(raw: &[u8], what: &str) -> Result<String, XmlError> {
    let name = std::str::from_utf8(raw)
        .map_err(|_| XmlError::Syntax(format!("{what} name is not UTF-8")))?;
    let start = |c: char| c.is_alphabetic() || c == '_' || c == ':';
    let rest = |c: char| start(c) || c.is_alphanumeric() || c == '-' || c == '.';
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if start(c) && chars.all(rest) => Ok(name.to_string()),
        _ => Err(XmlError::Syntax(format!("bad {what} name {name:?}"))),
    }
}

fn start_element(e: &quick_xml::events::BytesStart<'_>) -> Result<Element, XmlError> {
    let mut el = Element::new(xml_name(e.name().as_ref(), "element")?);
    for a in e.attributes() {
        let a = a.map_err(|e| XmlError::Syntax(e.to_string()))?;
        let k = xml_name(a.key.as_ref(), "attribute")?;
        let raw = String::from_utf8_lossy(&a.value).into_owned();
        el.attrs.push((k, unescape(&raw)?));
    }
    Ok(el)
}

fn resolve_entity(name: &str) -> Result<String, XmlError> {
    Ok(match name {
        "lt" => "<".into(),
        "gt" => ">".into(),
        "amp" => "&".into(),
        "apos" => "'".into(),
        "quot" => "\"".into(),
        n => {
            let code = if let Some(h) = n.strip_prefix("#x").or_else(|| n.strip_prefix("#X")) {
                u32::from_str_radix(h, 16).ok()
            } else if let Some(d) = n.strip_prefix('#') {
                d.parse().ok()
            } else {
                None
            };
            code.and_then(char::from_u32)
                .map(String::from)
                .ok_or_else(|| XmlError::Entity(n.to_string()))?
        }
    })
}

/// Resolve the references of an attribute value.
fn unescape(s: &str) -> Result<String, XmlError> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let j = after
            .find(';')
            .ok_or_else(|| XmlError::Syntax("unterminated reference".into()))?;
        out.push_str(&resolve_entity(&after[..j])?);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `s` escaped for an attribute value.
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s, true);
    out
}

/// pugixml's escaping: `&`, `<`, `>` always, `"` in attributes, control
/// characters as numeric references.
fn escape_into(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\t' => out.push('\t'),
            '\r' | '\n' if !attr => out.push(c),
            c if (c as u32) < 32 => {
                out.push_str(&format!("&#{};", c as u32));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_pugixml() {
        let e = Element::new("iq")
            .with_attr("type", "set")
            .with_child(
                Element::new("pubsub")
                    .with_attr("xmlns", "http://jabber.org/protocol/pubsub")
                    .with_child(Element::new("subscribe").with_attr("node", "a<b\"")),
            )
            .with_child(Element::leaf("af", 1))
            .with_child(Element::leaf("mac", ""));
        assert_eq!(
            e.to_pugi(""),
            "<iq type=\"set\">\n<pubsub xmlns=\"http://jabber.org/protocol/pubsub\">\n<subscribe node=\"a&lt;b&quot;\" />\n</pubsub>\n<af>1</af>\n<mac></mac>\n</iq>\n"
        );
        assert_eq!(
            e.to_pugi("\t"),
            "<iq type=\"set\">\n\t<pubsub xmlns=\"http://jabber.org/protocol/pubsub\">\n\t\t<subscribe node=\"a&lt;b&quot;\" />\n\t</pubsub>\n\t<af>1</af>\n\t<mac></mac>\n</iq>\n"
        );
    }

    #[test]
    fn parses_what_it_prints_and_references() {
        let src = "<?xml version=\"1.0\"?>\n<!-- c --><a x='1 &amp; 2'>\n  <b>t&lt;x&#65;</b>\n  <c/> <d></d><e> pad </e>\n</a>\n";
        let e = Element::parse(src).unwrap();
        assert_eq!(e.attr("x"), Some("1 & 2"));
        assert_eq!(e.child("b").unwrap().value(), "t<xA");
        assert_eq!(e.child("c").unwrap().text, None);
        assert_eq!(e.child("d").unwrap().text, None);
        assert_eq!(e.child("e").unwrap().value(), " pad ");
        assert_eq!(e.text, None);
        assert_eq!(Element::parse(&e.to_pugi("\t")).unwrap(), e);
    }

    #[test]
    fn rejects_broken_documents() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text",
            "<a>&nope;</a>",
            "<a x='&zz;'/>",
            "<\n<>x</>",
            "<a><<\u{b} /></a>",
            "<1a/>",
            "<a =\"1\"/>",
        ] {
            assert!(Element::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn find_is_depth_first() {
        let e = Element::parse("<a><b><item id='1'/></b><item id='2'/></a>").unwrap();
        assert_eq!(e.find("item").unwrap().attr("id"), Some("1"));
        assert!(e.find("nothing").is_none());
    }
}
