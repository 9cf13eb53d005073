//! Upstream's JIDs and the channels a connection carries.
//!
//! One TCP session to a control node carries three logical channels; a
//! stanza belongs to the one whose name its `to` contains (upstream's
//! `XmppChannelMux` does a substring match, so does [`Channel::of`]).

/// The control node's JID (`to` of the agent's stream header).
pub const CONTROL_NODE_JID: &str = "network-control@contrailsystems.com";
/// The DNS server's JID.
pub const DNS_NODE_JID: &str = "network-dns@contrailsystems.com";
/// The pubsub namespace of every iq and event.
pub const PUBSUB_NS: &str = "http://jabber.org/protocol/pubsub";
/// What the control node prepends to an agent name to name its
/// virtual-router (`virtual-router:default-global-system-config:<name>`).
pub const FQN_PREFIX: &str = "default-global-system-config:";
/// The items node that marks the end of a RIB.
pub const END_OF_RIB: &str = "0/0/EndOfRib";
/// The XMPP port of a control node.
pub const XMPP_PORT: u16 = 5269;

/// A logical channel of a session, by JID resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Routes (`.../bgp-peer`).
    BgpPeer,
    /// IF-MAP configuration (`.../config`).
    Config,
    /// DNS records (`.../dns-peer`).
    DnsPeer,
    /// `.../other-peer` (upstream's tests).
    Other,
}

impl Channel {
    pub fn resource(self) -> &'static str {
        match self {
            Channel::BgpPeer => "bgp-peer",
            Channel::Config => "config",
            Channel::DnsPeer => "dns-peer",
            Channel::Other => "other-peer",
        }
    }

    /// The channel a stanza addressed `to` belongs to, matched as upstream
    /// (the first resource name `to` contains, in upstream's order).
    pub fn of(to: &str) -> Option<Channel> {
        [
            Channel::BgpPeer,
            Channel::Config,
            Channel::DnsPeer,
            Channel::Other,
        ]
        .into_iter()
        .find(|c| to.contains(c.resource()))
    }

    /// `<jid>/<resource>`.
    pub fn jid(self, base: &str) -> String {
        format!("{base}/{}", self.resource())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demultiplexes_as_upstream() {
        assert_eq!(Channel::of("worker-3/bgp-peer"), Some(Channel::BgpPeer));
        assert_eq!(
            Channel::of("default-global-system-config:a1s27.contrail.juniper.net/config"),
            Some(Channel::Config)
        );
        assert_eq!(
            Channel::of("network-control@contrailsystems.com/dns-peer"),
            Some(Channel::DnsPeer)
        );
        assert_eq!(Channel::of("phys-host-1"), None);
        assert_eq!(
            Channel::Config.jid(CONTROL_NODE_JID),
            "network-control@contrailsystems.com/config"
        );
    }
}
