// SPDX-License-Identifier: GPL-2.0-only
/*
 * lqos data plane: XDP steering on ingress, tc egress classification, tc ingress
 * hairpin for on-a-stick mode. Layouts shared with Rust are in lqos_abi.h.
 *
 * Packet path: XDP parses Ethernet (+ up to two VLAN tags) and IPv4/IPv6, takes the
 * subscriber-side address (dst when the frame came from the Internet, src otherwise),
 * counts it, looks it up (epoch-checked LRU hot cache, then the LPM trie), writes the
 * class handle into XDP metadata and redirects to the class's CPU through the cpumap.
 * On egress the classifier sets skb->priority = class handle and
 * skb->queue_mapping = HTB major, from the metadata or from its own lookup.
 * Anything unmapped, unconfigured or not IP passes unshaped.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lqos_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define LQOS_IP_MAP_ENTRIES 262144
#define LQOS_HOT_CACHE_ENTRIES 32768
#define LQOS_HOST_ENTRIES 262144

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LQOS_IP_MAP_ENTRIES);
	__type(key, struct lqos_lpm_key);
	__type(value, struct lqos_ip_info);
} lqos_ip_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LQOS_HOT_CACHE_ENTRIES);
	__type(key, struct lqos_addr);
	__type(value, struct lqos_cache_entry);
} lqos_hot_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} lqos_epoch SEC(".maps");

/* max_entries is replaced at load time by the number of possible CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} lqos_cpu_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LQOS_HOST_ENTRIES);
	__type(key, struct lqos_addr);
	__type(value, struct lqos_host_counter);
} lqos_host_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct lqos_if_config);
} lqos_if_config SEC(".maps");

struct lqos_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Result of parsing one frame. */
struct lqos_parsed {
	struct lqos_vlan_hdr *outer_vlan; /* first tag in the frame data, if any */
	__u16 l3_proto;                   /* network byte order */
	__u32 l3_off;
};

static __always_inline int lqos_parse_l2(void *data, void *data_end, struct lqos_parsed *p)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	__u16 proto = eth->h_proto;
	__u32 off = sizeof(*eth);
	p->outer_vlan = 0;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct lqos_vlan_hdr *vh = data + off;
		if ((void *)(vh + 1) > data_end)
			return -1;
		if (i == 0)
			p->outer_vlan = vh;
		proto = vh->proto;
		off += sizeof(*vh);
	}
	p->l3_proto = proto;
	p->l3_off = off;
	return 0;
}

/* Copies the subscriber address (src if use_src, else dst). Returns 0 for IP, -1 otherwise. */
static __always_inline int lqos_subscriber_addr(void *data, void *data_end, struct lqos_parsed *p,
						int use_src, struct lqos_addr *out)
{
	if (p->l3_off > 64)
		return -1;
	if (p->l3_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + p->l3_off;
		if ((void *)(iph + 1) > data_end)
			return -1;
		__builtin_memset(out->bytes, 0xff, 12);
		__u32 a = use_src ? iph->saddr : iph->daddr;
		__builtin_memcpy(&out->bytes[12], &a, 4);
		return 0;
	}
	if (p->l3_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + p->l3_off;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		if (use_src)
			__builtin_memcpy(out->bytes, &ip6->saddr, 16);
		else
			__builtin_memcpy(out->bytes, &ip6->daddr, 16);
		return 0;
	}
	return -1;
}

/* Hot cache (valid only for the current epoch, negative results included), then the trie. */
static __always_inline int lqos_lookup(struct lqos_addr *addr, struct lqos_ip_info *out)
{
	__u32 zero = 0;
	__u32 epoch = 0;
	__u32 *ep = bpf_map_lookup_elem(&lqos_epoch, &zero);
	if (ep)
		epoch = *ep;

	struct lqos_cache_entry *ce = bpf_map_lookup_elem(&lqos_hot_cache, addr);
	if (ce && ce->epoch == epoch) {
		if (ce->flags & LQOS_CACHE_NEGATIVE)
			return 0;
		*out = ce->info;
		return 1;
	}

	struct lqos_lpm_key key = { .prefixlen = 128 };
	key.addr = *addr;
	struct lqos_ip_info *info = bpf_map_lookup_elem(&lqos_ip_map, &key);
	struct lqos_cache_entry ne = {};
	ne.epoch = epoch;
	if (info)
		ne.info = *info;
	else
		ne.flags = LQOS_CACHE_NEGATIVE;
	bpf_map_update_elem(&lqos_hot_cache, addr, &ne, BPF_ANY);
	if (!info)
		return 0;
	*out = ne.info;
	return 1;
}

static __always_inline void lqos_count(struct lqos_addr *addr, int upload, __u64 bytes, __u32 handle)
{
	struct lqos_host_counter *c = bpf_map_lookup_elem(&lqos_host_counters, addr);
	__u64 now = bpf_ktime_get_boot_ns();
	if (!c) {
		struct lqos_host_counter n = {};
		if (upload) {
			n.upload_bytes = bytes;
			n.upload_packets = 1;
		} else {
			n.download_bytes = bytes;
			n.download_packets = 1;
		}
		n.last_seen_ns = now;
		n.class_handle = handle;
		bpf_map_update_elem(&lqos_host_counters, addr, &n, BPF_NOEXIST);
		return;
	}
	if (upload) {
		c->upload_bytes += bytes;
		c->upload_packets += 1;
	} else {
		c->download_bytes += bytes;
		c->download_packets += 1;
	}
	c->last_seen_ns = now;
	c->class_handle = handle;
}

SEC("xdp")
int lqos_xdp(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct lqos_if_config *cfg = bpf_map_lookup_elem(&lqos_if_config, &ifindex);
	if (!cfg)
		return XDP_PASS;

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct lqos_parsed p;
	if (lqos_parse_l2(data, data_end, &p) < 0)
		return XDP_PASS;

	int upload;
	__u32 offset = 0;
	if (cfg->direction == LQOS_DIR_TO_INTERNET) {
		upload = 0;
	} else if (cfg->direction == LQOS_DIR_TO_NETWORK) {
		upload = 1;
	} else if (cfg->direction == LQOS_DIR_STICK) {
		if (!p.outer_vlan)
			return XDP_PASS;
		__u16 tci = bpf_ntohs(p.outer_vlan->tci);
		__u16 vid = tci & 0x0fff;
		if (vid == cfg->internet_vid) {
			upload = 0;
			tci = (tci & 0xf000) | (cfg->isp_vid & 0x0fff);
		} else if (vid == cfg->isp_vid) {
			upload = 1;
			offset = cfg->stick_offset;
			tci = (tci & 0xf000) | (cfg->internet_vid & 0x0fff);
		} else {
			return XDP_PASS;
		}
		/* Send it back out tagged with the other VLAN (tc ingress hairpins it). */
		p.outer_vlan->tci = bpf_htons(tci);
	} else {
		return XDP_PASS;
	}

	struct lqos_addr addr;
	if (lqos_subscriber_addr(data, data_end, &p, upload, &addr) < 0)
		return XDP_PASS;

	struct lqos_ip_info info;
	int mapped = lqos_lookup(&addr, &info);
	__u32 handle = 0;
	__u32 cpu = 0;
	if (mapped) {
		handle = info.class_handle + (offset << 16);
		cpu = info.cpu + offset;
	}
	lqos_count(&addr, upload, (__u64)(data_end - data), handle);
	if (!mapped)
		return XDP_PASS;

	/* Metadata is optional: if the driver cannot grow it, tc does its own lookup. */
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct lqos_xdp_meta)) == 0) {
		void *meta = (void *)(long)ctx->data_meta;
		void *d = (void *)(long)ctx->data;
		struct lqos_xdp_meta *m = meta;
		if ((void *)(m + 1) <= d) {
			m->magic = LQOS_META_MAGIC;
			m->class_handle = handle;
		}
	}
	return bpf_redirect_map(&lqos_cpu_map, cpu, XDP_PASS);
}

/* Benchmark anchor: the cheapest possible XDP program. Never attached by lqosd. */
SEC("xdp")
int lqos_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

static __always_inline void lqos_set_class(struct __sk_buff *skb, __u32 handle)
{
	skb->priority = handle;
	/* HTB major k lives on mq child 7FFF:k = TX queue k-1; with XPS disabled the core
	 * picks TX queue (queue_mapping - 1), so queue_mapping = k. */
	skb->queue_mapping = handle >> 16;
}

SEC("classifier")
int lqos_tc_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	void *data_meta = (void *)(long)skb->data_meta;
	struct lqos_xdp_meta *m = data_meta;
	if ((void *)(m + 1) <= data && m->magic == LQOS_META_MAGIC) {
		if (m->class_handle)
			lqos_set_class(skb, m->class_handle);
		return TC_ACT_OK;
	}

	__u32 ifindex = skb->ifindex;
	struct lqos_if_config *cfg = bpf_map_lookup_elem(&lqos_if_config, &ifindex);
	if (!cfg)
		return TC_ACT_OK;
	struct lqos_parsed p;
	if (lqos_parse_l2(data, data_end, &p) < 0)
		return TC_ACT_OK;

	/* Egress is the opposite direction of the same interface's ingress. */
	int upload;
	__u32 offset = 0;
	if (cfg->direction == LQOS_DIR_TO_INTERNET) {
		upload = 1;
	} else if (cfg->direction == LQOS_DIR_TO_NETWORK) {
		upload = 0;
	} else if (cfg->direction == LQOS_DIR_STICK) {
		__u16 vid;
		if (skb->vlan_present)
			vid = skb->vlan_tci & 0x0fff;
		else if (p.outer_vlan)
			vid = bpf_ntohs(p.outer_vlan->tci) & 0x0fff;
		else
			return TC_ACT_OK;
		if (vid == cfg->isp_vid) {
			upload = 0;
		} else if (vid == cfg->internet_vid) {
			upload = 1;
			offset = cfg->stick_offset;
		} else {
			return TC_ACT_OK;
		}
	} else {
		return TC_ACT_OK;
	}

	struct lqos_addr addr;
	if (lqos_subscriber_addr(data, data_end, &p, upload, &addr) < 0)
		return TC_ACT_OK;
	struct lqos_ip_info info;
	if (!lqos_lookup(&addr, &info))
		return TC_ACT_OK;
	lqos_set_class(skb, info.class_handle + (offset << 16));
	return TC_ACT_OK;
}

/* On a stick: frames tagged with either VLAN go straight back out of the same NIC
 * (XDP already swapped the tag), where lqos_tc_egress and the HTB tree shape them. */
SEC("classifier")
int lqos_tc_stick_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct lqos_if_config *cfg = bpf_map_lookup_elem(&lqos_if_config, &ifindex);
	if (!cfg || cfg->direction != LQOS_DIR_STICK)
		return TC_ACT_OK;
	__u16 vid;
	if (skb->vlan_present) {
		vid = skb->vlan_tci & 0x0fff;
	} else {
		void *data = (void *)(long)skb->data;
		void *data_end = (void *)(long)skb->data_end;
		struct lqos_parsed p;
		if (lqos_parse_l2(data, data_end, &p) < 0 || !p.outer_vlan)
			return TC_ACT_OK;
		vid = bpf_ntohs(p.outer_vlan->tci) & 0x0fff;
	}
	if (vid != cfg->internet_vid && vid != cfg->isp_vid)
		return TC_ACT_OK;
	return bpf_redirect(skb->ifindex, 0);
}
