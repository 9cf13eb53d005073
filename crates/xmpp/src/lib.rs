//! The XMPP dialect between a Tungsten Fabric / OpenSDN compute node's
//! agent and its control nodes (`contrail-vrouter-agent` <->
//! `contrail-control`, TCP 5269).
//!
//! # Why hand-written
//!
//! This is not the XMPP of the RFCs, and no XMPP crate speaks it: there is
//! no SASL or resource binding; the stream is cut into stanzas by text
//! matching rather than parsed as one document; keepalives are a U+0200
//! character; the payloads are pubsub iqs and events whose items follow
//! upstream's own schemas (`xmpp_unicast.xsd`, `xmpp_enet.xsd`, ...) and
//! IF-MAP config messages. What a crate does well is used: `quick-xml`
//! reads the XML, tokio runs the session, `native-tls` the STARTTLS.
//!
//! `native-tls` rather than rustls: rustls needs a crypto provider (ring,
//! aws-lc-rs) with C and assembly to compile for every target, which the
//! Windows lane cannot do for windows-msvc from Linux; `native-tls` uses
//! the platform's TLS (OpenSSL on Linux, as upstream; SChannel on Windows)
//! and compiles nothing for Windows.
//!
//! # Map
//!
//! | module | what |
//! |---|---|
//! | [`xml`] | an element tree, printed the way upstream's pugixml prints |
//! | [`frame`] | the byte stream cut into headers, stanzas and keepalives |
//! | [`jid`] | JIDs, the `bgp-peer` / `config` / `dns-peer` channels |
//! | [`stanza`] | iq and message stanzas: parse, and upstream's exact text |
//! | [`schema`], [`unicast`], [`enet`], [`mcast`] | the route item schemas |
//! | [`ifmap`] | IF-MAP config: changes, properties as VNC JSON, the graph |
//! | [`session`] | a tokio session: open, STARTTLS, keepalive, hold timer |
//!
//! Facts come from upstream's `tf-controller` (`src/xmpp`, `src/bgp`
//! `bgp_xmpp_channel.cc` / `xmpp_message_builder.cc`,
//! `src/vnsw/agent/controller`, `src/ifmap`) and the schemas in
//! `tf-api-client`; `tests/upstream` holds upstream's own messages, which
//! the tests read.

pub mod enet;
pub mod frame;
pub mod ifmap;
pub mod jid;
pub mod mcast;
pub mod schema;
pub mod session;
pub mod stanza;
pub mod unicast;
pub mod xml;
