// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// The in-kernel fast path for flows the forwarding core has decided
// (`vrouter --fast-path tc`, crates/vrouter/src/linux/fastpath.rs).
//
// Two programs share one hash map, keyed by (ingress ifindex, IPv4
// 5-tuple), whose entries the datapath installs when the core forwarded
// a packet of that flow VM-to-VM on this host with a plain action:
//
// - `fp_tc` (TC ingress on a VM port's host-side veth) rewrites the MACs
//   and TTL exactly as the core does and redirects a hit to the peer
//   port's egress, counting packets and bytes in the entry;
// - `fp_sock` (a socket filter on that port's AF_PACKET socket) drops the
//   same hits from the socket. Packet taps run *before* TC ingress, so
//   without it the user-space datapath would forward every offloaded
//   packet a second time.
//
// Both call `fp_decide` on the same bytes, so they agree. Everything the
// programs do not reproduce goes to user space unchanged: non-IPv4, IP
// options, fragments, non-TCP/UDP, TCP SYN/FIN/RST (the core tracks TCP
// state for flow teardown), TTL <= 1, and misses.
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
	__u8 rewrite;    // 1: write macs and decrement TTL (routed)
	__u8 gen;        // the flow entry's generation when installed
	__u8 pad[4];
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fp_key);
	__type(value, struct fp_value);
} FP_FLOWS SEC(".maps");

#define ETH_HLEN 14
#define IP_CSUM_OFF (ETH_HLEN + 10)
#define IP_TTL_OFF (ETH_HLEN + 8)

static __always_inline struct fp_value *fp_decide(struct __sk_buff *skb)
{
	__u8 h[ETH_HLEN + 20 + 14];
	struct fp_key k = {};

	if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)) < 0)
		return 0;
	if (h[12] != 0x08 || h[13] != 0x00)
		return 0;
	// IPv4, no options; not a fragment (MF or offset).
	if (h[14] != 0x45)
		return 0;
	if ((h[20] & 0x3f) != 0 || h[21] != 0)
		return 0;
	// TTL 1 is the agent's (ICMP time exceeded), as in the core.
	if (h[22] <= 1)
		return 0;
	__u8 proto = h[23];
	if (proto == 6) {
		// FIN 0x01, SYN 0x02, RST 0x04: the core sees them.
		if (h[ETH_HLEN + 20 + 13] & 0x07)
			return 0;
	} else if (proto != 17) {
		return 0;
	}
	k.ifindex = skb->ifindex;
	__builtin_memcpy(&k.saddr, &h[26], 4);
	__builtin_memcpy(&k.daddr, &h[30], 4);
	__builtin_memcpy(&k.sport, &h[34], 2);
	__builtin_memcpy(&k.dport, &h[36], 2);
	k.proto = proto;
	struct fp_value *v = bpf_map_lookup_elem(&FP_FLOWS, &k);
	if (!v)
		return 0;
	// Same Ethernet header as the frame the core decided on.
	__u32 fa[3], va[3];
	__builtin_memcpy(fa, h, 12);
	__builtin_memcpy(va, v->in_macs, 12);
	if (fa[0] != va[0] || fa[1] != va[1] || fa[2] != va[2])
		return 0;
	// The core's MTU check: a frame (or a super-packet's segments) larger
	// than the output MTU gets ICMP too-big or fragmentation there.
	if (v->mtu) {
		__u32 gso = skb->gso_size;
		__u32 l4 = proto == 6 ? (h[ETH_HLEN + 20 + 12] >> 4) * 4 : 8;
		__u32 ip_len = gso ? gso + 20 + l4 : skb->len - ETH_HLEN;
		if (ip_len > v->mtu)
			return 0;
	}
	return v;
}

SEC("classifier")
int fp_tc(struct __sk_buff *skb)
{
	struct fp_value *v = fp_decide(skb);

	if (!v)
		return TC_ACT_OK;
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, skb->len);
	if (v->rewrite) {
		__u8 old[2], new[2];

		if (bpf_skb_store_bytes(skb, 0, v->macs, 12, 0) < 0)
			return TC_ACT_SHOT;
		if (bpf_skb_load_bytes(skb, IP_TTL_OFF, old, 2) < 0)
			return TC_ACT_SHOT;
		new[0] = old[0] - 1;
		new[1] = old[1];
		__u16 o, n;
		__builtin_memcpy(&o, old, 2);
		__builtin_memcpy(&n, new, 2);
		if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, o, n, 2) < 0)
			return TC_ACT_SHOT;
		if (bpf_skb_store_bytes(skb, IP_TTL_OFF, new, 1, 0) < 0)
			return TC_ACT_SHOT;
	}
	return bpf_redirect(v->oif, 0);
}

SEC("socket")
int fp_sock(struct __sk_buff *skb)
{
	// Drop (0) what fp_tc redirects; keep the rest whole.
	return fp_decide(skb) ? 0 : skb->len;
}

char _license[] SEC("license") = "GPL";
