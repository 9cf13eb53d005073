//! Feeds arbitrary bytes to the agent's XMPP receive path as a control node
//! would send them: the stream cut into frames (in two reads, split where
//! the first byte says), each stanza parsed, its route items read with the
//! inet, EVPN and multicast schemas and its IF-MAP config applied to a
//! graph. Nothing may panic; what parses must print back to text that
//! parses to the same value (XML tree without mixed content, route items).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp::enet::EnetItem;
use xmpp::frame::{Frame, Framer};
use xmpp::ifmap::{self, graph::Graph};
use xmpp::mcast::McastItem;
use xmpp::stanza::{IqBody, Stanza};
use xmpp::unicast::InetItem;
use xmpp::xml::Element;

fn items(items: &[Element]) {
    for it in items {
        if let Ok(i) = InetItem::parse(it) {
            assert_eq!(
                InetItem::parse(&i.encode()).expect("re-encoded inet item"),
                i
            );
        }
        if let Ok(i) = EnetItem::parse(it) {
            assert_eq!(
                EnetItem::parse(&i.encode()).expect("re-encoded EVPN item"),
                i
            );
        }
        let _ = McastItem::parse(it);
    }
}

fn mixed(e: &Element) -> bool {
    (e.text.is_some() && !e.children.is_empty()) || e.children.iter().any(mixed)
}

fn stanza(text: &str, graph: &mut Graph) {
    if let Ok(e) = Element::parse(text) {
        let again = Element::parse(&e.to_pugi("\t")).expect("printed XML parses");
        // pugixml indents text beside child elements (mixed content, never
        // in this protocol), which changes that text.
        if !mixed(&e) {
            assert_eq!(again, e);
        }
    }
    let Ok(s) = Stanza::parse(text) else { return };
    let _ = (s.to(), s.channel());
    match s {
        Stanza::Iq(iq) => match iq.body {
            IqBody::Publish { items: its, .. } => items(&its),
            IqBody::Config(c) => {
                let (changes, _errors) = ifmap::parse_config(&c);
                graph.apply(&changes);
                for _ in graph.objects() {}
            }
            _ => {}
        },
        Stanza::Message(m) => items(&m.items),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let mut f = Framer::new(1 << 16);
    let mut graph = Graph::default();
    for part in [&rest[..cut], &rest[cut..]] {
        f.push(part);
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Stanza(s))) => stanza(&s, &mut graph),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    // The same bytes as one stanza, past the framer.
    if let Ok(s) = std::str::from_utf8(rest) {
        stanza(s, &mut graph);
    }
});
