// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// The in-kernel fast path for flows the forwarding core has decided
// (`vrouter --fast-path tc`, crates/vrouter/src/linux/fastpath.rs).
//
// Two programs share one hash map, keyed by (ingress ifindex, IPv4
// 5-tuple), whose entries the datapath installs when the core forwarded
// a packet of that flow with a plain action, VM-to-VM on this host or
// from a VM into an MPLSoUDP, MPLSoGRE or VXLAN tunnel to another host:
//
// - `fp_tc` (TC ingress on a VM port's host-side veth) rewrites the MACs
//   and TTL exactly as the core does, pushes the core's outer headers for
//   a tunnel (bpf_skb_adjust_room with the ENCAP flags, so a GSO
//   super-packet stays whole and is segmented after the fabric device),
//   and redirects a hit to the peer port's or the fabric's egress,
//   counting packets and bytes in the entry's slot of FP_COUNTS;
// - `fp_sock` (a socket filter on that port's AF_PACKET socket) drops the
//   same hits from the socket. Packet taps run *before* TC ingress, so
//   without it the user-space datapath would forward every offloaded
//   packet a second time.
//
// - `fp_tc_fab` (TC ingress on the fabric port, `--fast-path tc-encap`)
//   decapsulates MPLSoUDP, MPLSoGRE and VXLAN packets of flows the core
//   decapsulated and delivered to a local VM port: it checks the outer
//   headers the decision was made for (plain layout, our address, the
//   label or VNI), strips them with bpf_skb_adjust_room (a tunnel GSO
//   super-packet stays whole), writes the Ethernet header and TTL the
//   core would and redirects to the VM port's veth; `fp_sock_fab` keeps
//   the same frames from the fabric's AF_PACKET socket.
//
// The socket filter decides, once per frame, and TC follows it: the
// filter writes its verdict into the skb's control block (`cb`, which
// survives from the packet tap to TC ingress), and TC forwards exactly
// the frames the filter kept from the socket, looking their entry up
// again. So an entry that appears or goes between the two cannot make a
// frame go both ways (twice) or neither way (lost). Removal is in two
// steps for the same reason: the datapath first marks an entry dead (the
// filter then treats it as a miss, TC still forwards a frame the filter
// already kept from the socket) and deletes it later. One entry is marked
// in its slot of FP_COUNTS, all of them at once by moving FP_EPOCH on;
// both arrays are mapped into the datapath's memory, so neither takes a
// system call.
//
// Everything the programs do not reproduce goes to user space unchanged:
// non-IPv4, IP options, fragments, non-TCP/UDP, TCP SYN/FIN/RST (the core
// tracks TCP state for flow teardown), TTL <= 1, UDP super-packets into
// or out of a tunnel, and misses; and a frame the kernel refuses to
// encapsulate is handed back to user space (fp_punt).
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// Keep in step with `FpKey` / `FpValue` in fastpath.rs.
struct fp_key {
	__u32 ifindex;
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct fp_value {
	__u32 oif;       // ifindex to redirect to (egress)
	__u32 flow;      // the core's flow index (for the fold)
	__u8 macs[12];   // new destination + source MAC
	__u8 in_macs[12]; // the frame's MACs the decision was made for
	__u16 mtu;       // output MTU (0: none); larger goes to user space
	__u8 rewrite;    // bit 0: write macs; bit 1: decrement TTL;
	                 // bit 2: a fabric entry (hdr: outer dst, label/VNI);
	                 // bit 3: oif is a veth whose peer is in another netns
	__u8 gen;        // the flow entry's generation when installed
	__u8 encap_len;  // 0: no tunnel; else bytes of hdr (outer Ethernet on)
	__u8 encap_kind; // FP_GRE, FP_MPLS_UDP or FP_VXLAN
	__u8 l2;         // the inner frame keeps its Ethernet header
	__u8 pad1;
	__u32 slot;      // the entry's counters in FP_COUNTS
	__u32 epoch;     // FP_EPOCH when installed; an older one is dead
	// Outer headers as the core writes them for an empty payload and IP
	// identification 0; length, identification and checksum per packet.
	__u8 hdr[56];
};

#define FP_GRE 1
#define FP_MPLS_UDP 2
#define FP_VXLAN 3

// Outer IPv4 identification: a counter as the core's, one per CPU (no
// atomics returning values in clang-14's BPF v1; the outer packets are
// never fragmented: the MTU check above sends larger ones to user space).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} FP_IPID SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fp_key);
	__type(value, struct fp_value);
} FP_FLOWS SEC(".maps");

// Per entry, in an array the datapath maps into its memory: packets and
// bytes, which its once-a-second fold reads without a system call per
// entry, and `dead`, which it sets without one (being removed: a miss for
// the filter, not for TC). The datapath gives each entry its own slot,
// zeroed first, and frees it a grace after the entry is gone.
struct fp_count {
	__u64 packets;
	__u64 bytes;
	__u32 dead;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct fp_count);
} FP_COUNTS SEC(".maps");

// The datapath's epoch. Entries of an older one are dead: a flush (any
// configuration change) is one write to this mapped array, not one map
// update per entry; the datapath deletes them after the grace.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
} FP_EPOCH SEC(".maps");

// Being removed: marked so in its slot, or installed before the last
// flush.
static __always_inline int fp_dead(struct fp_value *v)
{
	__u32 zero = 0;
	__u32 *e = bpf_map_lookup_elem(&FP_EPOCH, &zero);
	struct fp_count *c = bpf_map_lookup_elem(&FP_COUNTS, &v->slot);

	return !e || !c || c->dead || v->epoch != *e;
}

static __always_inline void fp_count(struct fp_value *v, __u32 len)
{
	struct fp_count *c = bpf_map_lookup_elem(&FP_COUNTS, &v->slot);

	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, len);
	}
}

#define ETH_HLEN 14

// Declared here: Debian 12's linux-libc-dev (6.1) predates them; values
// from the kernel's uapi (bpf_adj_room_flags).
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif
#define FP_ADJ_ROOM_DECAP_L4_GRE (1ULL << 9)
#define FP_ADJ_ROOM_DECAP_L4_UDP (1ULL << 10)
#define FP_DECAP 4
#define FP_PEER 8
#define IP_CSUM_OFF (ETH_HLEN + 10)
#define IP_TTL_OFF (ETH_HLEN + 8)

// The filter's verdict in cb[0..1]: a magic word (cb may hold anything
// when our filter did not run) and the verdict.
#define FP_CB_MAGIC 0x76724650 // "vrFP"
#define FP_TO_KERNEL 0x4b524e4c
#define FP_TO_USER 0x55535220
// skb->mark of a frame fp_tc hands back to the port's ingress for user
// space (fp_punt); a container cannot set it (marks are scrubbed when a
// frame crosses namespaces).
#define FP_PUNT_MARK 0x76725055 // "vrPU"
#define FP_ENCAP_REFUSED -2

// The flow key of an IPv4 packet the fast path may take, from `h`: its
// Ethernet header (0x0800), the IPv4 header and the first 14 bytes of L4.
// IPv4 without options, not a fragment (MF or offset), TTL above 1 (TTL 1
// is the agent's: ICMP time exceeded, as in the core), UDP, or TCP
// without FIN 0x01, SYN 0x02, RST 0x04 (the core sees them). 0 if not.
static __always_inline int fp_ipv4_key(const __u8 *h, __u32 ifindex, struct fp_key *k)
{
	if (h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45)
		return 0;
	if ((h[20] & 0x3f) != 0 || h[21] != 0)
		return 0;
	if (h[22] <= 1)
		return 0;
	__u8 proto = h[23];
	if (proto == 6) {
		if (h[ETH_HLEN + 20 + 13] & 0x07)
			return 0;
	} else if (proto != 17) {
		return 0;
	}
	k->ifindex = ifindex;
	__builtin_memcpy(&k->saddr, &h[26], 4);
	__builtin_memcpy(&k->daddr, &h[30], 4);
	__builtin_memcpy(&k->sport, &h[34], 2);
	__builtin_memcpy(&k->dport, &h[36], 2);
	k->proto = proto;
	return 1;
}

static __always_inline struct fp_value *fp_decide(struct __sk_buff *skb,
						  int dead_ok)
{
	__u8 h[ETH_HLEN + 20 + 14];
	struct fp_key k = {};

	if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)) < 0)
		return 0;
	if (!fp_ipv4_key(h, skb->ifindex, &k))
		return 0;
	__u8 proto = k.proto;
	struct fp_value *v = bpf_map_lookup_elem(&FP_FLOWS, &k);
	if (!v || (!dead_ok && fp_dead(v)))
		return 0;
	// Same Ethernet header as the frame the core decided on.
	__u32 fa[3], va[3];
	__builtin_memcpy(fa, h, 12);
	__builtin_memcpy(va, v->in_macs, 12);
	if (fa[0] != va[0] || fa[1] != va[1] || fa[2] != va[2])
		return 0;
	// A UDP super-packet into a tunnel goes to user space, which
	// encapsulates its segments one by one: encapsulated here it would
	// cross a fabric that keeps tunnel GSO whole, as a UDP-in-tunnel
	// super-packet no receiver takes (0 of 400 datagrams arrived); and it
	// may be a tunnel's own super-packet (a container's VXLAN), which
	// bpf_skb_adjust_room refuses to encapsulate again. (The skb's GSO
	// type is not visible here.)
	if (k.proto == 17 && skb->gso_size && v->encap_len)
		return 0;
	// The core's MTU check: a frame (or a super-packet's segments) larger
	// than the output MTU gets ICMP too-big or fragmentation there.
	// Into a tunnel: the outer IP packet carries the inner IP packet (or
	// frame, L2) and the tunnel headers.
	if (v->mtu) {
		__u32 gso = skb->gso_size;
		__u32 l4 = proto == 6 ? (h[ETH_HLEN + 20 + 12] >> 4) * 4 : 8;
		__u32 ip_len = gso ? gso + 20 + l4 : skb->len - ETH_HLEN;
		if (v->encap_len)
			ip_len += v->encap_len - ETH_HLEN + (v->l2 ? ETH_HLEN : 0);
		if (ip_len > v->mtu)
			return 0;
	}
	return v;
}

static __always_inline __u16 fp_csum16(__u8 *ip)
{
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 20; i += 2)
		sum += ((__u32)ip[i] << 8) | ip[i + 1];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

// Push the outer headers of `v` in front of the frame (L2: before its
// Ethernet header; L3: in place of it). 0 on success.
static __always_inline int fp_encap(struct __sk_buff *skb, struct fp_value *v)
{
	__u8 eth[ETH_HLEN];
	__u32 hlen = v->encap_len, l4 = v->encap_kind == FP_GRE ? 4 : 8;
	__u32 label = hlen - ETH_HLEN - 20 - l4;
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
		      (v->encap_kind == FP_GRE ? BPF_F_ADJ_ROOM_ENCAP_L4_GRE
					       : BPF_F_ADJ_ROOM_ENCAP_L4_UDP);
	__u32 room = hlen - ETH_HLEN;

	if (bpf_skb_load_bytes(skb, 0, eth, ETH_HLEN) < 0)
		return -1;
	if (v->l2) {
		// The segmenter starts the inner packet at the inner Ethernet
		// header (ETH_P_TEB): the label/VNI counts as tunnel header.
		flags |= BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
			 BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN);
		room += ETH_HLEN;
	} else {
		flags |= BPF_F_ADJ_ROOM_ENCAP_L2(label);
	}
	// Refused with the frame untouched (one already encapsulated once,
	// skb->encapsulation: a container's own tunnel): the caller punts it.
	if (bpf_skb_adjust_room(skb, room, BPF_ADJ_ROOM_MAC, flags) < 0)
		return FP_ENCAP_REFUSED;
	// Constant sizes for the verifier: the three encapsulations.
	if (hlen == 42) {
		if (bpf_skb_store_bytes(skb, 0, v->hdr, 42, 0) < 0)
			return -1;
		if (v->l2 && bpf_skb_store_bytes(skb, 42, eth, ETH_HLEN, 0) < 0)
			return -1;
	} else if (hlen == 46) {
		if (bpf_skb_store_bytes(skb, 0, v->hdr, 46, 0) < 0)
			return -1;
		if (v->l2 && bpf_skb_store_bytes(skb, 46, eth, ETH_HLEN, 0) < 0)
			return -1;
	} else if (hlen == 50) {
		if (bpf_skb_store_bytes(skb, 0, v->hdr, 50, 0) < 0)
			return -1;
		if (v->l2 && bpf_skb_store_bytes(skb, 50, eth, ETH_HLEN, 0) < 0)
			return -1;
	} else {
		return -1;
	}
	// Per packet: IP total length, identification, checksum; UDP length.
	// (A GSO super-packet's segments get theirs when segmented.)
	__u8 ip[20];
	__u32 total = skb->len - ETH_HLEN;
	__u32 zero = 0, *idp = bpf_map_lookup_elem(&FP_IPID, &zero);
	__u16 id = idp ? (__u16)(*idp)++ : 0;

	__builtin_memcpy(ip, &v->hdr[ETH_HLEN], 20);
	ip[2] = total >> 8;
	ip[3] = total;
	ip[4] = id >> 8;
	ip[5] = id;
	ip[10] = 0;
	ip[11] = 0;
	__u16 c = fp_csum16(ip);
	ip[10] = c >> 8;
	ip[11] = c;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, ip, 20, 0) < 0)
		return -1;
	if (v->encap_kind != FP_GRE) {
		__u8 ul[2] = {(total - 20) >> 8, total - 20};

		if (bpf_skb_store_bytes(skb, ETH_HLEN + 24, ul, 2, 0) < 0)
			return -1;
	}
	return 0;
}

// To the entry's output: a container's veth end directly (its ingress,
// skipping the host end's transmit and backlog queue), else the egress.
static __always_inline int fp_redirect(const struct fp_value *v)
{
	if (v->rewrite & FP_PEER)
		return bpf_redirect_peer(v->oif, 0);
	return bpf_redirect(v->oif, 0);
}

// Replace the IPv4 header's TTL/protocol word `from` (as read) with `to`,
// fixing the header checksum; 0 or negative.
static __always_inline int fp_ttl_write(struct __sk_buff *skb, const __u8 *from, const __u8 *to)
{
	__u16 o, n;

	__builtin_memcpy(&o, from, 2);
	__builtin_memcpy(&n, to, 2);
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, o, n, 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, IP_TTL_OFF, to, 1, 0);
}

// Decrement the TTL as the core does; `old` gets the word as it was.
static __always_inline int fp_ttl_dec(struct __sk_buff *skb, __u8 *old)
{
	__u8 new[2];

	if (bpf_skb_load_bytes(skb, IP_TTL_OFF, old, 2) < 0)
		return -1;
	new[0] = old[0] - 1;
	new[1] = old[1];
	return fp_ttl_write(skb, old, new);
}

// A frame the filter kept from user space that cannot be forwarded here
// after all: the kernel refused to encapsulate it (it is already a
// tunnel's packet, which the filter cannot see). Its MACs and TTL are put
// back as they arrived and it goes back to the port's ingress, marked, so
// that the filter hands it to user space this time, which encapsulates it.
static __always_inline int fp_punt(struct __sk_buff *skb, struct fp_value *v, __u8 *ttl)
{
	if ((v->rewrite & 1) && bpf_skb_store_bytes(skb, 0, v->in_macs, 12, 0) < 0)
		return TC_ACT_SHOT;
	if (v->rewrite & 2) {
		__u8 cur[2];

		if (bpf_skb_load_bytes(skb, IP_TTL_OFF, cur, 2) < 0 ||
		    fp_ttl_write(skb, cur, ttl) < 0)
			return TC_ACT_SHOT;
	}
	skb->mark = FP_PUNT_MARK;
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

SEC("classifier")
int fp_tc(struct __sk_buff *skb)
{
	__u32 magic = skb->cb[0], verdict = skb->cb[1];

	skb->cb[0] = 0;
	// Not kept from the socket (or no filter ran): user space has it.
	if (magic != FP_CB_MAGIC || verdict != FP_TO_KERNEL) {
		if (skb->mark == FP_PUNT_MARK)
			skb->mark = 0;
		return TC_ACT_OK;
	}
	// Kept from the socket: forward it. The entry may be `dead` by now,
	// but it is still there; gone altogether (deleted well after being
	// marked) or no longer matching only if a frame spent that long
	// between the tap and here: drop rather than guess.
	struct fp_value *v = fp_decide(skb, 1);
	__u32 len = skb->len;
	__u8 old[2] = {};

	if (!v)
		return TC_ACT_SHOT;
	if ((v->rewrite & 2) && fp_ttl_dec(skb, old) < 0)
		return TC_ACT_SHOT;
	if (v->rewrite & 1) {
		if (bpf_skb_store_bytes(skb, 0, v->macs, 12, 0) < 0)
			return TC_ACT_SHOT;
	}
	if (v->encap_len) {
		int r = fp_encap(skb, v);

		if (r == FP_ENCAP_REFUSED)
			return fp_punt(skb, v, old);
		if (r < 0)
			return TC_ACT_SHOT;
	}
	fp_count(v, len);
	return fp_redirect(v);
}

// The decision for a frame from the fabric: the flow entry keyed by the
// fabric's ifindex and the inner 5-tuple, if the outer headers are the
// ones the core decided on. Sets *olen to the bytes before the inner
// packet (L3) or inner Ethernet header (L2).
static __always_inline struct fp_value *fp_decap_decide(struct __sk_buff *skb, __u32 *olen,
							int dead_ok)
{
	__u8 o[50];
	__u8 h[ETH_HLEN + 20 + 14];
	struct fp_key k = {};
	__u32 kind, label, word;

	if (bpf_skb_load_bytes(skb, 0, o, sizeof(o)) < 0)
		return 0;
	// Outer IPv4 without options, not a fragment, header checksum right.
	if (o[12] != 0x08 || o[13] != 0x00 || o[14] != 0x45)
		return 0;
	if ((o[20] & 0x3f) != 0 || o[21] != 0)
		return 0;
	if (fp_csum16(&o[ETH_HLEN]) != 0)
		return 0;
	if (o[23] == 47) {
		// GRE version 0 without options, MPLS unicast, one label.
		if (o[34] != 0 || o[35] != 0 || o[36] != 0x88 || o[37] != 0x47)
			return 0;
		kind = FP_GRE;
		*olen = 42;
		word = ((__u32)o[38] << 24) | ((__u32)o[39] << 16) | ((__u32)o[40] << 8) | o[41];
	} else if (o[23] == 17) {
		// The core verifies a non-zero UDP checksum of a plain frame.
		if ((o[40] | o[41]) && !skb->gso_size)
			return 0;
		if (o[36] == 0x19 && o[37] == 0xeb) {
			kind = FP_MPLS_UDP;
			*olen = 46;
			word = ((__u32)o[42] << 24) | ((__u32)o[43] << 16) | ((__u32)o[44] << 8) | o[45];
		} else if (o[36] == 0x12 && o[37] == 0xb5) {
			kind = FP_VXLAN;
			*olen = 50;
			word = 0;
		} else {
			return 0;
		}
	} else {
		return 0;
	}
	if (kind == FP_VXLAN) {
		if (!(o[42] & 0x08))
			return 0;
		label = ((__u32)o[46] << 16) | ((__u32)o[47] << 8) | o[48];
		if (bpf_skb_load_bytes(skb, 50, h, sizeof(h)) < 0)
			return 0;
	} else {
		// Bottom of stack, TTL above 1 (the core's checks).
		if (!(word & 0x100) || (word & 0xff) <= 1)
			return 0;
		label = word >> 12;
		if (bpf_skb_load_bytes(skb, *olen, &h[ETH_HLEN], sizeof(h) - ETH_HLEN) < 0)
			return 0;
		h[12] = 0x08;
		h[13] = 0x00;
	}
	// The inner packet: the same checks as on a VM port.
	if (!fp_ipv4_key(h, skb->ifindex, &k))
		return 0;
	__u8 proto = k.proto;
	// A super-packet around UDP is a sender's UDP GSO of whole tunnel
	// frames (a user-space datapath batching its sends), whose segments
	// each carry their own inner headers: stripping the first outer header
	// would merge them. User space segments and decapsulates it. (Tunnel
	// GSO, which this program takes whole, only ever carries TCP.)
	if (proto == 17 && skb->gso_size)
		return 0;
	struct fp_value *v = bpf_map_lookup_elem(&FP_FLOWS, &k);
	if (!v || (!dead_ok && fp_dead(v)) || !(v->rewrite & FP_DECAP) ||
	    v->encap_kind != kind || v->encap_len != *olen)
		return 0;
	__u32 vl = ((__u32)v->hdr[4] << 24) | ((__u32)v->hdr[5] << 16) |
		   ((__u32)v->hdr[6] << 8) | v->hdr[7];
	if (vl != label)
		return 0;
	__u32 od, vd;
	__builtin_memcpy(&od, &o[30], 4);
	__builtin_memcpy(&vd, v->hdr, 4);
	if (od != vd)
		return 0;
	if (v->l2) {
		__u32 fa[3], va[3];
		__builtin_memcpy(fa, h, 12);
		__builtin_memcpy(va, v->in_macs, 12);
		if (fa[0] != va[0] || fa[1] != va[1] || fa[2] != va[2])
			return 0;
	}
	if (v->mtu) {
		__u32 gso = skb->gso_size;
		__u32 l4 = proto == 6 ? (h[ETH_HLEN + 20 + 12] >> 4) * 4 : 8;
		__u32 ip_len = gso ? gso + 20 + l4
				   : skb->len - *olen - (v->l2 ? ETH_HLEN : 0);
		if (ip_len > v->mtu)
			return 0;
	}
	return v;
}

SEC("classifier")
int fp_tc_fab(struct __sk_buff *skb)
{
	__u32 magic = skb->cb[0], verdict = skb->cb[1], olen = 0;
	__u8 eth[ETH_HLEN];

	skb->cb[0] = 0;
	// As fp_tc: forward exactly what fp_sock_fab kept from the socket.
	if (magic != FP_CB_MAGIC || verdict != FP_TO_KERNEL)
		return TC_ACT_OK;
	struct fp_value *v = fp_decap_decide(skb, &olen, 1);

	if (!v)
		return TC_ACT_SHOT;
	fp_count(v, skb->len);
	if (v->l2) {
		if (bpf_skb_load_bytes(skb, 50, eth, ETH_HLEN) < 0)
			return TC_ACT_SHOT;
	} else {
		eth[12] = 0x08;
		eth[13] = 0x00;
	}
	if (v->rewrite & 1)
		__builtin_memcpy(eth, v->macs, 12);
	// Everything between the outer Ethernet header and the inner packet
	// goes (for L2 the inner Ethernet header too; it is rewritten in
	// place of the outer one). FIXED_GSO: the inner segments keep their
	// size; DECAP_L4_*: a tunnel GSO packet becomes a plain one.
	__s32 room = olen - ETH_HLEN + (v->l2 ? ETH_HLEN : 0);
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV4 |
		      (v->encap_kind == FP_GRE ? FP_ADJ_ROOM_DECAP_L4_GRE
					       : FP_ADJ_ROOM_DECAP_L4_UDP);
	if (bpf_skb_adjust_room(skb, -room, BPF_ADJ_ROOM_MAC, flags) < 0) {
		// A kernel that refuses the DECAP flags (6.18 does): a plain
		// frame has no tunnel GSO state to clear; a super-packet keeps
		// its tunnel GSO marks, which the container's own stack ignores
		// (it receives, it does not segment) but which would break its
		// segmentation if the container forwarded it on.
		if (bpf_skb_adjust_room(skb, -room, BPF_ADJ_ROOM_MAC,
					BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
			return TC_ACT_SHOT;
	}
	if (bpf_skb_store_bytes(skb, 0, eth, ETH_HLEN, 0) < 0)
		return TC_ACT_SHOT;
	__u8 old[2];

	if ((v->rewrite & 2) && fp_ttl_dec(skb, old) < 0)
		return TC_ACT_SHOT;
	return fp_redirect(v);
}

SEC("socket")
int fp_sock_fab(struct __sk_buff *skb)
{
	__u32 olen = 0;
	int kernel = fp_decap_decide(skb, &olen, 0) != 0;

	skb->cb[0] = FP_CB_MAGIC;
	skb->cb[1] = kernel ? FP_TO_KERNEL : FP_TO_USER;
	return kernel ? 0 : skb->len;
}

SEC("socket")
int fp_sock(struct __sk_buff *skb)
{
	// Drop (0) what fp_tc is to redirect, keep the rest whole; tell fp_tc.
	// A frame fp_tc punted back is user space's.
	int kernel = skb->mark != FP_PUNT_MARK && fp_decide(skb, 0) != 0;

	skb->cb[0] = FP_CB_MAGIC;
	skb->cb[1] = kernel ? FP_TO_KERNEL : FP_TO_USER;
	return kernel ? 0 : skb->len;
}

char _license[] SEC("license") = "GPL";
