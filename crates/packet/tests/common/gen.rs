//! A proptest generator of Ethernet frames with known field values, built
//! byte by byte here (independently of the crate's parser and emitters).
#![allow(dead_code)]

use proptest::prelude::*;

#[derive(Clone, Debug)]
pub struct Spec {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// (TPID, TCI)
    pub vlans: Vec<(u16, u16)>,
    pub l3: L3,
    /// Bytes of Ethernet padding after the L3 packet.
    pub padding: usize,
}

#[derive(Clone, Debug)]
pub enum L3 {
    Arp {
        op: u16,
        spa: [u8; 4],
        tpa: [u8; 4],
    },
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        ttl: u8,
        id: u16,
        df: bool,
        mf: bool,
        /// In 8-byte units.
        frag_off: u16,
        option_words: usize,
        /// An IPsec AH (length field) between the header and L4.
        ah: Option<u8>,
        l4: L4,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        hop: u8,
        exts: Vec<Ext>,
        l4: L4,
    },
    Other {
        ethertype: u16,
        len: usize,
    },
}

#[derive(Clone, Debug)]
pub enum Ext {
    /// (next-header code, length field); HBH 0, routing 43, dest opts 60.
    Raw(u8, u8),
    Frag {
        id: u32,
        off: u16,
        more: bool,
    },
    /// Length field (>= 1).
    Ah(u8),
}

#[derive(Clone, Debug)]
pub struct L4 {
    pub kind: L4Kind,
    pub payload: usize,
    /// Cut the L4 header to this many bytes (the IP lengths follow).
    pub cut: Option<usize>,
}

#[derive(Clone, Debug)]
pub enum L4Kind {
    Udp { sport: u16, dport: u16 },
    Tcp { sport: u16, dport: u16, flags: u8 },
    Icmp { ty: u8, code: u8, ident: u16 },
    Other(u8),
}

impl L4Kind {
    pub fn header_len(&self) -> usize {
        match self {
            L4Kind::Udp { .. } | L4Kind::Icmp { .. } => 8,
            L4Kind::Tcp { .. } => 20,
            L4Kind::Other(_) => 0,
        }
    }
}

fn l4_strategy(v6: bool) -> impl Strategy<Value = L4> {
    let icmp_types: Vec<u8> = if v6 {
        vec![1, 2, 3, 128, 129, 135, 136]
    } else {
        vec![0, 3, 8, 11, 13]
    };
    let kind = prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(sport, dport)| L4Kind::Udp { sport, dport }),
        (any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(sport, dport, flags)| L4Kind::Tcp {
            sport,
            dport,
            flags
        }),
        (proptest::sample::select(icmp_types), 0u8..4, any::<u16>())
            .prop_map(|(ty, code, ident)| L4Kind::Icmp { ty, code, ident }),
        // Protocols neither parser decodes (GRE, OSPF, an unassigned one).
        proptest::sample::select(vec![47u8, 89, 200]).prop_map(L4Kind::Other),
    ];
    (kind, 0usize..24, prop::option::weighted(0.1, 0usize..20)).prop_map(|(kind, payload, cut)| {
        let cut = cut.filter(|c| *c < kind.header_len());
        L4 { kind, payload, cut }
    })
}

fn ext_strategy() -> impl Strategy<Value = Vec<Ext>> {
    (
        prop::option::of(0u8..3),
        prop::option::of(0u8..3),
        prop::option::of(0u8..3),
        prop::option::of((
            any::<u32>(),
            prop_oneof![Just(0u16), 1u16..8191],
            any::<bool>(),
        )),
        prop::option::of(1u8..5),
    )
        .prop_map(|(hbh, dest, route, frag, ah)| {
            let mut v = Vec::new();
            if let Some(l) = hbh {
                v.push(Ext::Raw(0, l));
            }
            if let Some(l) = dest {
                v.push(Ext::Raw(60, l));
            }
            if let Some(l) = route {
                v.push(Ext::Raw(43, l));
            }
            let mut later_fragment = false;
            if let Some((id, off, more)) = frag {
                v.push(Ext::Frag { id, off, more });
                later_fragment = off != 0;
            }
            // In a non-first fragment nothing after the fragment header is
            // a header.
            if let (Some(l), false) = (ah, later_fragment) {
                v.push(Ext::Ah(l));
            }
            v
        })
}

pub fn spec_strategy() -> impl Strategy<Value = Spec> {
    let vlan = (
        proptest::sample::select(vec![0x8100u16, 0x88a8]),
        any::<u16>(),
    );
    let l3 = prop_oneof![
        1 => (1u16..3, any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(op, spa, tpa)| L3::Arp { op, spa, tpa }),
        4 => (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![3 => Just(0u16), 1 => 1u16..8191],
            prop_oneof![3 => Just(0usize), 1 => 1usize..11],
            prop::option::weighted(0.1, 1u8..5),
            l4_strategy(false),
        )
            .prop_map(|(src, dst, ttl, id, df, mf, frag_off, option_words, ah, l4)| L3::V4 {
                src,
                dst,
                ttl,
                id,
                df,
                mf,
                frag_off,
                option_words,
                // A non-first fragment has no headers after IPv4.
                ah: ah.filter(|_| frag_off == 0),
                l4,
            }),
        4 => (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u8>(),
            prop_oneof![1 => Just(Vec::new()), 2 => ext_strategy()],
            l4_strategy(true),
        )
            .prop_map(|(src, dst, hop, exts, l4)| L3::V6 { src, dst, hop, exts, l4 }),
        1 => (proptest::sample::select(vec![0x88ccu16, 0x8847, 0x0842]), 0usize..50)
            .prop_map(|(ethertype, len)| L3::Other { ethertype, len }),
    ];
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        prop::collection::vec(vlan, 0..=2),
        l3,
        prop_oneof![3 => Just(0usize), 1 => 1usize..12],
    )
        .prop_map(|(dst_mac, src_mac, vlans, l3, padding)| Spec {
            dst_mac,
            src_mac,
            vlans,
            l3,
            padding,
        })
}

fn l4_proto(k: &L4Kind, v6: bool) -> u8 {
    match k {
        L4Kind::Udp { .. } => 17,
        L4Kind::Tcp { .. } => 6,
        L4Kind::Icmp { .. } => {
            if v6 {
                58
            } else {
                1
            }
        }
        L4Kind::Other(p) => *p,
    }
}

impl Spec {
    pub fn l3_offset(&self) -> usize {
        14 + 4 * self.vlans.len()
    }

    pub fn ethertype(&self) -> u16 {
        match &self.l3 {
            L3::Arp { .. } => 0x0806,
            L3::V4 { .. } => 0x0800,
            L3::V6 { .. } => 0x86dd,
            L3::Other { ethertype, .. } => *ethertype,
        }
    }

    /// The L4 protocol the frame carries.
    pub fn proto(&self) -> u8 {
        match &self.l3 {
            L3::V4 { l4, .. } => l4_proto(&l4.kind, false),
            L3::V6 { l4, .. } => l4_proto(&l4.kind, true),
            _ => 0,
        }
    }

    /// Whether the frame holds the (uncut) start of the L4 header.
    pub fn has_l4(&self) -> bool {
        match &self.l3 {
            L3::V4 { frag_off, l4, .. } => *frag_off == 0 && l4.cut.is_none(),
            L3::V6 { exts, l4, .. } => {
                !exts
                    .iter()
                    .any(|e| matches!(e, Ext::Frag { off, .. } if *off != 0))
                    && l4.cut.is_none()
            }
            _ => false,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for (tpid, tci) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&self.ethertype().to_be_bytes());
        match &self.l3 {
            L3::Arp { op, spa, tpa } => {
                f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
                f.extend_from_slice(&op.to_be_bytes());
                f.extend_from_slice(&self.src_mac);
                f.extend_from_slice(spa);
                f.extend_from_slice(&[0; 6]);
                f.extend_from_slice(tpa);
            }
            L3::V4 {
                src,
                dst,
                ttl,
                id,
                df,
                mf,
                frag_off,
                option_words,
                ah,
                l4,
            } => {
                let mut body = Vec::new();
                if let Some(len) = ah {
                    body.push(l4_proto(&l4.kind, false));
                    body.push(*len);
                    body.extend_from_slice(&[0, 0]);
                    body.extend(std::iter::repeat_n(0x5au8, (usize::from(*len) + 2) * 4 - 4));
                }
                body.extend(l4_bytes(l4, false, *frag_off != 0));
                let ihl = 5 + option_words;
                let total = (ihl * 4 + body.len()) as u16;
                f.push(0x40 | ihl as u8);
                f.push(0);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&id.to_be_bytes());
                let fl = (u16::from(*df) << 14) | (u16::from(*mf) << 13) | frag_off;
                f.extend_from_slice(&fl.to_be_bytes());
                f.push(*ttl);
                f.push(if ah.is_some() {
                    51
                } else {
                    l4_proto(&l4.kind, false)
                });
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(src);
                f.extend_from_slice(dst);
                // NOP options.
                f.extend(std::iter::repeat_n(1u8, option_words * 4));
                f.extend_from_slice(&body);
            }
            L3::V6 {
                src,
                dst,
                hop,
                exts,
                l4,
            } => {
                let proto = l4_proto(&l4.kind, true);
                let later = exts
                    .iter()
                    .any(|e| matches!(e, Ext::Frag { off, .. } if *off != 0));
                let mut chain = Vec::new();
                let codes: Vec<u8> = exts
                    .iter()
                    .map(|e| match e {
                        Ext::Raw(c, _) => *c,
                        Ext::Frag { .. } => 44,
                        Ext::Ah(_) => 51,
                    })
                    .chain([proto])
                    .collect();
                for (k, e) in exts.iter().enumerate() {
                    let next = codes[k + 1];
                    match e {
                        Ext::Raw(_, len) => {
                            chain.push(next);
                            chain.push(*len);
                            // PadN option filling the rest.
                            let n = (usize::from(*len) + 1) * 8 - 2;
                            chain.push(1);
                            chain.push((n - 2) as u8);
                            chain.extend(std::iter::repeat_n(0u8, n - 2));
                        }
                        Ext::Frag { id, off, more } => {
                            chain.push(next);
                            chain.push(0);
                            chain.extend_from_slice(&((off << 3) | u16::from(*more)).to_be_bytes());
                            chain.extend_from_slice(&id.to_be_bytes());
                        }
                        Ext::Ah(len) => {
                            chain.push(next);
                            chain.push(*len);
                            chain.extend_from_slice(&[0, 0]);
                            let n = (usize::from(*len) + 2) * 4 - 4;
                            chain.extend(std::iter::repeat_n(0x5au8, n));
                        }
                    }
                }
                let body = l4_bytes(l4, true, later);
                let plen = (chain.len() + body.len()) as u16;
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&plen.to_be_bytes());
                f.push(codes[0]);
                f.push(*hop);
                f.extend_from_slice(src);
                f.extend_from_slice(dst);
                f.extend_from_slice(&chain);
                f.extend_from_slice(&body);
            }
            L3::Other { len, .. } => f.extend(std::iter::repeat_n(0xeeu8, *len)),
        }
        f.extend(std::iter::repeat_n(0u8, self.padding));
        f
    }
}

fn l4_bytes(l4: &L4, _v6: bool, later_fragment: bool) -> Vec<u8> {
    let mut b = Vec::new();
    if later_fragment {
        // Only payload bytes; make them look like nothing in particular.
        b.extend(std::iter::repeat_n(0x77u8, l4.payload + 8));
        return b;
    }
    let total = l4.kind.header_len() + l4.payload;
    match l4.kind {
        L4Kind::Udp { sport, dport } => {
            b.extend_from_slice(&sport.to_be_bytes());
            b.extend_from_slice(&dport.to_be_bytes());
            b.extend_from_slice(&(total as u16).to_be_bytes());
            b.extend_from_slice(&[0, 0]);
        }
        L4Kind::Tcp {
            sport,
            dport,
            flags,
        } => {
            b.extend_from_slice(&sport.to_be_bytes());
            b.extend_from_slice(&dport.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        }
        L4Kind::Icmp { ty, code, ident } => {
            b.extend_from_slice(&[ty, code, 0, 0]);
            b.extend_from_slice(&ident.to_be_bytes());
            b.extend_from_slice(&[0, 1]);
        }
        L4Kind::Other(_) => {}
    }
    b.extend(std::iter::repeat_n(0x33u8, l4.payload));
    if let Some(c) = l4.cut {
        b.truncate(c);
    }
    b
}
