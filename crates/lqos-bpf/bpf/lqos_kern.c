// SPDX-License-Identifier: GPL-2.0-only
/*
 * lqos data plane: XDP on ingress (classify, count, measure TCP, steer), tc egress
 * classification, tc ingress hairpin + VLAN swap for on-a-stick mode. Layouts shared with
 * Rust are in lqos_abi.h.
 *
 * Packet path (XDP): parse Ethernet, up to two VLAN tags (the inner one decides the direction
 * on a stick), PPPoE session, IPv4/IPv6, TCP/UDP. Take the subscriber-side address (dst when
 * the frame came from the Internet, src otherwise) and classify it through a per-CPU
 * direct-mapped cache (tag = address, valid for one epoch, negative results included) in
 * front of the LPM trie. Count bytes/packets per slot and direction in a per-CPU array
 * (slot 0 = unmapped, plus a sampled table of unknown addresses). TCP and UDP update a
 * bounded flow table; TCP also counts retransmits and samples RTT from timestamps
 * (ePPing-style: a TSval seen one way, matched with the TSecr echoing it the other way).
 * Then write the class handle into XDP metadata and redirect to the class's CPU.
 *
 * Cost: on this kind of CPU every out-of-line helper call costs 20-60 ns, so the common
 * path makes none except bpf_xdp_adjust_meta and bpf_redirect_map: every map it touches per
 * packet is an ARRAY (lookups inlined by the verifier, bpf_get_smp_processor_id too).
 * Per-CPU data (the classification cache, slot counters) lives in plain ARRAYs indexed by
 * the CPU, one load instead of a PERCPU_ARRAY's pointer table + value. The flow table is an
 * ARRAY of 4-way sets indexed by an inline hash of the 5-tuple, not a HASH map (helper call
 * + jhash of 40 bytes, ~40 ns). The clock is read only when a flow is created or an RTT
 * timestamp is taken or matched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lqos_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define LQOS_UNKNOWN_ENTRIES 4096
#define ETH_P_PPP_SES_ 0x8864
#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057

/* Set at load time (EbpfLoader::override_global). */
const volatile __u32 lqos_max_slots = 65536;
const volatile __u32 lqos_track_flows = 1;
const volatile __u32 lqos_cache_sets = LQOS_CACHE_ENTRIES / 2; /* per CPU, power of two */
const volatile __u32 lqos_cache_shift = 49;   /* 64 - log2(lqos_cache_sets) */
const volatile __u32 lqos_flow_budget = 4096; /* new flows per slot per flow generation */
const volatile __u32 lqos_flow_shift = 49;    /* 64 - log2(flow table sets), 64 = one set */
const volatile __u32 lqos_flow_mask = 32767;  /* flow table sets - 1 */
const volatile __u32 lqos_pfx_mask = 262143;  /* prefix-hash buckets - 1 */
const volatile __u32 lqos_bench_spread_on = 0;
const volatile __u32 lqos_bench_spread_mask = 0;
const volatile __u32 lqos_bench_train_shift = 0; /* log2 of packets per address in a row */

/* max_entries of the trie, counters, histograms, flows and cache are replaced at load time
 * (LoadOptions; per-CPU ARRAYs × possible CPUs). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 262144);
	__type(key, struct lqos_lpm_key);
	__type(value, struct lqos_ip_info);
} lqos_ip_map SEC(".maps");

/* BPF_F_MMAPABLE only for its page-aligned values: 64-byte values then sit on cache lines. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct lqos_slot_counters);
} lqos_slot_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct lqos_rtt_hist);
} lqos_rtt_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct lqos_flow_entry);
} lqos_flows SEC(".maps");

/* New flows per slot in the current flow generation: generation << 32 | count, shared by all
 * CPUs (atomics), touched only when a flow is about to be created. Not pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} lqos_slot_flows SEC(".maps");

/* Flow generation: lqosd bumps it every sweep; a flow whose gen is two or more behind had no
 * packet for a whole sweep interval and may be replaced by a new flow of its set. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} lqos_flow_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LQOS_CACHE_ENTRIES);
	__type(key, __u32);
	__type(value, struct lqos_cache_set);
} lqos_cache SEC(".maps");

/* Exact-prefix hash in front of the trie and its length list (lqos_abi.h). The hash's
 * max_entries (buckets, a power of two with 2 × buckets ≥ 2 × the trie's max_entries: load
 * factor ≤ 50 %) is set at load time. Not pinned: derived data, rebuilt from the pinned trie
 * by every lqosd that loads the program. Written by lqosd through mmap. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 262144);
	__type(key, __u32);
	__type(value, struct lqos_pfx_bucket);
} lqos_pfx_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lqos_pfx_lens);
} lqos_pfx_lens SEC(".maps");

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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LQOS_IF_SLOTS);
	__type(key, __u32);
	__type(value, struct lqos_if_config);
} lqos_if_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lqos_settings);
} lqos_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LQOS_UNKNOWN_ENTRIES);
	__type(key, struct lqos_addr);
	__type(value, struct lqos_unknown);
} lqos_unknown SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lqos_stats);
} lqos_stats SEC(".maps");

/* Upper bounds (µs) of the RTT buckets; mirrored in abi.rs RTT_BUCKET_UPPER_US. */
static const __u32 lqos_rtt_edges[LQOS_RTT_BUCKETS] = {
	50, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000, 7500,
	10000, 15000, 20000, 30000, 40000, 50000, 75000, 100000, 150000, 200000, 300000,
	400000, 500000, 750000, 1000000, 2000000, 0xffffffffu,
};

struct lqos_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

#define LQOS_TAG_NONE (-2)
#define LQOS_TAG_HW (-1)

/* What the parser found. Offsets are from the start of the frame data. */
struct lqos_pkt {
	__u32 l3_off;
	__u32 l4_off;
	__s32 dir_tci_off; /* TCI of the direction tag in the data, LQOS_TAG_HW or LQOS_TAG_NONE */
	__u16 dir_vid;
	__u16 l3_proto;    /* ETH_P_IP / ETH_P_IPV6, host order */
	__u16 ip_len;      /* IPv4 total length / IPv6 40 + payload length */
	__u8 l4_proto;     /* IPPROTO_TCP/UDP when the header follows directly, else 0 */
	__u8 pad;
};

/*
 * One 8-, 4- or 2-byte load from packet memory. Frames are not word-aligned (14 bytes of
 * Ethernet), which x86 loads and the verifier accept (it checks alignment strictly only on
 * CPUs without efficient unaligned access); a __builtin_memcpy compiles to one byte load, a
 * shift and an or per byte on the BPF target (~100 instructions for two IPv6 addresses).
 */
static __always_inline __u64 lqos_pkt_u64(const void *p)
{
	return *(const __u64 *)p;
}

static __always_inline __u32 lqos_pkt_u32(const void *p)
{
	return *(const __u32 *)p;
}

static __always_inline __u16 lqos_pkt_u16(const void *p)
{
	return *(const __u16 *)p;
}

/*
 * Ethernet, up to two VLAN tags (802.1Q/802.1ad), PPPoE session, IPv4/IPv6, first L4 header.
 * `hw_tag`/`hw_tci`: a tag the kernel already moved to skb->vlan_tci (tc only); it counts as
 * the outermost. The direction tag is the innermost of the (at most two) tags.
 */
static __always_inline int lqos_parse(void *data, void *data_end, int hw_tag, __u16 hw_tci,
				      struct lqos_pkt *p)
{
	p->dir_tci_off = LQOS_TAG_NONE;
	p->dir_vid = 0;
	p->l4_proto = 0;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	__u16 proto = lqos_pkt_u16(&eth->h_proto); /* ethhdr is packed: byte loads otherwise */
	__u32 off = sizeof(*eth);
	if (hw_tag) {
		p->dir_tci_off = LQOS_TAG_HW;
		p->dir_vid = hw_tci & 0x0fff;
	}
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct lqos_vlan_hdr *vh = data + off;
		if ((void *)(vh + 1) > data_end)
			return -1;
		p->dir_tci_off = off;
		p->dir_vid = bpf_ntohs(vh->tci) & 0x0fff;
		proto = vh->proto;
		off += sizeof(*vh);
	}
	if (proto == bpf_htons(ETH_P_PPP_SES_)) {
		/* ver/type, code, session id, length, then the 2-byte PPP protocol. */
		__u8 *ppp = data + off;
		if ((void *)(ppp + 8) > data_end)
			return -1;
		__u16 pp = ((__u16)ppp[6] << 8) | ppp[7];
		if (pp == PPP_IPV4)
			proto = bpf_htons(ETH_P_IP);
		else if (pp == PPP_IPV6)
			proto = bpf_htons(ETH_P_IPV6);
		else
			return -1;
		off += 8;
	}
	p->l3_off = off;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + off;
		if ((void *)(iph + 1) > data_end)
			return -1;
		p->l3_proto = ETH_P_IP;
		p->ip_len = bpf_ntohs(iph->tot_len);
		__u32 ihl = iph->ihl * 4;
		if (ihl < sizeof(*iph))
			return -1;
		p->l4_off = off + ihl;
		/* Only first fragments carry the L4 header. */
		if ((iph->frag_off & bpf_htons(0x1fff)) == 0 &&
		    (iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP))
			p->l4_proto = iph->protocol;
		return 0;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		p->l3_proto = ETH_P_IPV6;
		p->ip_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		p->l4_off = off + sizeof(*ip6);
		if (ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP)
			p->l4_proto = ip6->nexthdr;
		return 0;
	}
	return -1;
}

/*
 * Subscriber and remote address into the flow key (subscriber = src on upload). Every word of
 * the key is written with one 8-byte store, as it is read (hash, compares): narrower stores
 * read back as a wider load stall the CPU's store forwarding for ~10 cycles each.
 */
static __always_inline int lqos_addrs(void *data, void *data_end, struct lqos_pkt *p, int upload,
				      struct lqos_flow_key *k)
{
	__u64 *w = (__u64 *)k;
	__u32 off = p->l3_off;
	if (off > 64)
		return -1;
	if (p->l3_proto == ETH_P_IP) {
		struct iphdr *iph = data + off;
		if ((void *)(iph + 1) > data_end)
			return -1;
		__u32 s = upload ? iph->saddr : iph->daddr;
		__u32 r = upload ? iph->daddr : iph->saddr;
		/* Twelve 0xFF bytes, then the address as it is on the wire. */
		w[0] = ~0ull;
		w[1] = 0xffffffffull | ((__u64)s << 32);
		w[2] = ~0ull;
		w[3] = 0xffffffffull | ((__u64)r << 32);
		return 0;
	}
	struct ipv6hdr *ip6 = data + off;
	if ((void *)(ip6 + 1) > data_end)
		return -1;
	__u64 s0 = lqos_pkt_u64(&ip6->saddr), s1 = lqos_pkt_u64((__u8 *)&ip6->saddr + 8);
	__u64 d0 = lqos_pkt_u64(&ip6->daddr), d1 = lqos_pkt_u64((__u8 *)&ip6->daddr + 8);
	w[0] = upload ? s0 : d0;
	w[1] = upload ? s1 : d1;
	w[2] = upload ? d0 : s0;
	w[3] = upload ? d1 : s1;
	return 0;
}

static __always_inline struct lqos_stats *lqos_stats_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&lqos_stats, &zero);
}

/* Benchmark only (removed by the verifier when lqos_bench_spread_on == 0). */
static __always_inline void lqos_bench_spread(struct lqos_addr *a)
{
	struct lqos_stats *st = lqos_stats_get();
	if (!st)
		return;
	__u64 n = st->bench_counter++ >> (lqos_bench_train_shift & 31);
	__u32 idx = (__u32)(n * 2654435761u) & lqos_bench_spread_mask;
	/* IPv4: the address is the top half of word 1; IPv6: bytes 4..7 are the top half of
	 * word 0. Whole-word stores, like lqos_addrs. */
	__u64 *w = (__u64 *)a;
	int v4 = w[0] == ~0ull && (__u32)w[1] == 0xffffffffu;
	__u64 x = v4 ? w[1] : w[0];
	__u32 hi = bpf_htonl(bpf_ntohl((__u32)(x >> 32)) + idx);
	x = (x & 0xffffffffull) | ((__u64)hi << 32);
	if (v4)
		w[1] = x;
	else
		w[0] = x;
}

struct lqos_class {
	__u32 class_handle;
	__u32 slot;
	__u32 cpu;
	int mapped;
};

#define lqos_barrier() asm volatile("" ::: "memory")

static __always_inline int lqos_cache_hit(struct lqos_cache_entry *ce, __u64 a0, __u64 a1,
					  __u32 epoch, struct lqos_class *out)
{
	__u64 t0, t1;
	__builtin_memcpy(&t0, &ce->addr.bytes[0], 8);
	__builtin_memcpy(&t1, &ce->addr.bytes[8], 8);
	__u16 flags = ce->flags;
	if (t0 != a0 || t1 != a1 || ce->epoch != epoch || !(flags & LQOS_CACHE_VALID))
		return 0;
	/* A store only on the first use after an aging pass (the line is this CPU's and in L1). */
	if (!(flags & LQOS_CACHE_REF))
		ce->flags = flags | LQOS_CACHE_REF;
	out->mapped = (flags & LQOS_CACHE_MAPPED) != 0;
	out->class_handle = ce->class_handle;
	out->slot = ce->slot;
	out->cpu = ce->cpu;
	return 1;
}

/*
 * Exact-prefix hash (see lqos_abi.h). Every load of an entry sits between two reads of its
 * sequence word; lqosd makes the word odd, writes, makes it even. The order of the loads is
 * kept by compiler barriers: x86 does not reorder loads with loads (TSO), which this relies
 * on; any doubt (odd or changed word) sends the packet to the trie.
 */
static __always_inline __u64 lqos_pfx_hash_key(__u64 k0, __u64 k1, __u32 len)
{
	__u64 h = k0 * 0x9e3779b97f4a7c15ull ^ k1 * 0xc2b2ae3d27d4eb4full ^
		  (__u64)(len + 1) * 0x165667b19e3779f9ull;
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return h;
}

/* 1: this way holds the prefix (out filled), 0: it does not, -1: being written. */
static __always_inline int lqos_pfx_way(struct lqos_pfx_entry *e, __u64 k0, __u64 k1,
					__u64 len1, struct lqos_class *out)
{
	__u64 w = *(volatile __u64 *)e; /* seq | len1 << 32 | cpu << 48 */
	lqos_barrier();
	__u64 x0 = *(volatile __u64 *)&e->k0;
	__u64 x1 = *(volatile __u64 *)&e->k1;
	__u64 cs = *(volatile __u64 *)&e->class_handle; /* class_handle | slot << 32 */
	lqos_barrier();
	__u32 s2 = *(volatile __u32 *)&e->seq;
	if ((w & 1) || (__u32)w != s2)
		return -1;
	if (((w >> 32) & 0xff) != len1 || x0 != k0 || x1 != k1)
		return 0;
	__u32 slot = (__u32)(cs >> 32);
	out->mapped = 1;
	out->class_handle = (__u32)cs;
	out->slot = slot < lqos_max_slots ? slot : 0;
	out->cpu = (__u32)(w >> 48);
	return 1;
}

static __always_inline int lqos_pfx_bucket(struct lqos_pfx_bucket *bk, __u64 k0, __u64 k1,
					   __u64 len1, struct lqos_class *out)
{
	int r = lqos_pfx_way(&bk->way[0], k0, k1, len1, out);
	if (r)
		return r;
	return lqos_pfx_way(&bk->way[1], k0, k1, len1, out);
}

/* The prefix of length `len` around the address (A0, A1 as big-endian numbers). */
static __always_inline int lqos_pfx_probe(__u64 A0, __u64 A1, __u32 len, struct lqos_class *out)
{
	if (len > 128)
		return -1;
	__u64 k0, k1;
	if (len >= 64) {
		k0 = A0;
		k1 = len >= 128 ? A1 : A1 & ~(~0ull >> ((len - 64) & 63));
	} else {
		k0 = A0 & ~(~0ull >> (len & 63));
		k1 = 0;
	}
	__u64 h = lqos_pfx_hash_key(k0, k1, len);
	__u32 b1 = (__u32)h & lqos_pfx_mask;
	__u32 b2 = (__u32)(h >> 32) & lqos_pfx_mask;
	struct lqos_pfx_bucket *bk1 = bpf_map_lookup_elem(&lqos_pfx_hash, &b1);
	struct lqos_pfx_bucket *bk2 = bpf_map_lookup_elem(&lqos_pfx_hash, &b2);
	if (!bk1 || !bk2)
		return -1;
	/* Touch the second line now: both (usually cold) loads are then in flight at once,
	 * instead of the second one starting when the first bucket has missed. */
	__u64 touch = *(volatile __u64 *)bk2;
	(void)touch;
	int r = lqos_pfx_bucket(bk1, k0, k1, len + 1, out);
	if (r || b2 == b1)
		return r;
	return lqos_pfx_bucket(bk2, k0, k1, len + 1, out);
}

/*
 * 1: answered by the prefix hash (out filled, mapped or not), 2: answered "unmapped" by the
 * near bitmap (out filled), 0: walk the trie.
 * A global function: the verifier checks it once, on its own, instead of once per way out
 * of the probe loop times everything that follows in the caller (which exceeds its
 * instruction budget). It costs a direct call and return, on cache misses only.
 */
__attribute__((noinline)) int lqos_pfx_lookup(__u64 a0, __u64 a1, struct lqos_class *out)
{
	__u32 zero = 0;
	if (!out)
		return 0;
	struct lqos_stats *st = bpf_map_lookup_elem(&lqos_stats, &zero);
	struct lqos_pfx_lens *L = bpf_map_lookup_elem(&lqos_pfx_lens, &zero);
	if (!L)
		return 0;
	/* IPv4 = first 96 bits all ones (a0, a1 hold the bytes in memory order). */
	int v4 = a0 == ~0ull && (__u32)a1 == 0xffffffffu;
	struct lqos_pfx_family *f = v4 ? &L->fam[LQOS_PFX_FAM_V4] : &L->fam[LQOS_PFX_FAM_V6];
	__u32 s1 = *(volatile __u32 *)&L->seq;
	lqos_barrier();
	__u64 head = *(volatile __u64 *)f;        /* n | complete << 8 | overflow << 16 */
	__u64 lens = *(volatile __u64 *)f->lens;  /* lens[i] = byte i */
	lqos_barrier();
	__u32 s2 = *(volatile __u32 *)&L->seq;
	if ((s1 & 1) || s1 != s2) {
		if (st)
			st->pfx_torn++;
		return 0;
	}
	__u32 n = head & 0xff;
	__u32 overflow = (head >> 16) & 0xff;
	__u64 A0 = __builtin_bswap64(a0), A1 = __builtin_bswap64(a1);
	int found = 0;
	int dark = 0;
	if ((head >> 24) & 0xff) {
		__u32 idx = v4 ? ((__u32)A1) >> 16 : ((__u32)(A0 >> 32) * 0x9e3779b1u) >> 16;
		__u64 word = *(volatile __u64 *)&L->near[v4 ? 0 : 1][(idx >> 6) &
								     (LQOS_PFX_NEAR_WORDS - 1)];
		dark = !(word & (1ull << (idx & 63)));
	}
	/* A bounded loop (the verifier walks it at most LQOS_PFX_LENS times). */
	for (int i = 0; i < LQOS_PFX_LENS && !dark; i++) {
		if ((__u32)i >= n)
			break;
		int r = lqos_pfx_probe(A0, A1, (__u32)(lens >> (8 * i)) & 0xff, out);
		if (r > 0) {
			found = 1;
			break;
		}
		if (r < 0) {
			if (st)
				st->pfx_torn++;
			return 0;
		}
		if (overflow & (1u << i))
			return 0;
	}
	if (!found && !dark && !((head >> 8) & 0xff))
		return 0;
	/* lqosd keeps the list's word odd while it moves entries between their two buckets: a
	 * probe that straddled a move may have missed an entry that was there all along (and
	 * then answered a shorter prefix, or "unmapped"). Such an answer goes to the trie. */
	lqos_barrier();
	if (*(volatile __u32 *)&L->seq != s1) {
		if (st)
			st->pfx_torn++;
		return 0;
	}
	if (dark && st)
		st->pfx_dark++;
	if (!found) {
		out->mapped = 0;
		out->class_handle = 0;
		out->slot = 0;
		out->cpu = 0;
	}
	return dark ? 2 : 1;
}

/*
 * This CPU's 2-way set-associative cache (tag + epoch, negative results too), then the
 * prefix hash, then the trie.
 * A miss fills the way that is empty or from an older epoch, else a way with a negative
 * answer, else the one filled longer ago; a negative answer evicts a mapped entry only when
 * that entry went unused since the previous such miss in its set (see below).
 */
static __always_inline void lqos_classify(struct lqos_addr *addr, struct lqos_class *out)
{
	__u32 zero = 0;
	__u32 epoch = 0;
	__u32 *ep = bpf_map_lookup_elem(&lqos_epoch, &zero);
	if (ep)
		epoch = *ep;

	__u64 a0, a1;
	__builtin_memcpy(&a0, &addr->bytes[0], 8);
	__builtin_memcpy(&a1, &addr->bytes[8], 8);
	/* Fibonacci hashing of the address as a number (byte-swapped so that neighbouring
	 * addresses and prefixes differ in the low bits), set from the top bits: dense
	 * address plans (consecutive /32s, /64s, /56s) fill the cache without collisions. */
	__u64 h = __builtin_bswap64(a0) ^ __builtin_bswap64(a1);
	h *= 0x9e3779b97f4a7c15ull;
	__u32 set = (__u32)(h >> (lqos_cache_shift & 63)) & (lqos_cache_sets - 1);
	__u32 idx = bpf_get_smp_processor_id() * lqos_cache_sets + set;
	struct lqos_cache_set *cs = bpf_map_lookup_elem(&lqos_cache, &idx);
	if (cs) {
		if (lqos_cache_hit(&cs->way[0], a0, a1, epoch, out) ||
		    lqos_cache_hit(&cs->way[1], a0, a1, epoch, out))
			return;
	}

	struct lqos_stats *st = lqos_stats_get();
	if (st)
		st->cache_misses++;
	int pfx = lqos_pfx_lookup(a0, a1, out);
	/* Space no prefix covers (a scan, mostly): as cheap to answer again as to cache, and not
	 * cached, so a scan never evicts the subscribers' entries. */
	if (pfx == 2)
		return;
	if (!pfx) {
		if (st)
			st->trie_lookups++;
		struct lqos_lpm_key key = { .prefixlen = 128 };
		key.addr = *addr;
		struct lqos_ip_info *info = bpf_map_lookup_elem(&lqos_ip_map, &key);
		if (info) {
			out->mapped = 1;
			out->class_handle = info->class_handle;
			out->slot = info->slot < lqos_max_slots ? info->slot : 0;
			out->cpu = info->cpu;
		} else {
			out->mapped = 0;
			out->class_handle = 0;
			out->slot = 0;
			out->cpu = 0;
		}
	}
	if (!cs || out->cpu > 0xffff) /* a CPU that does not fit the entry is never cached */
		return;
	struct lqos_cache_entry *w0 = &cs->way[0];
	struct lqos_cache_entry *w1 = &cs->way[1];
	__u16 f0 = w0->flags, f1 = w1->flags;
	int fresh0 = (f0 & LQOS_CACHE_VALID) && w0->epoch == epoch;
	int fresh1 = (f1 & LQOS_CACHE_VALID) && w1->epoch == epoch;
	/* A fresh way holding a subscriber's mapping. */
	int pos0 = fresh0 && (f0 & LQOS_CACHE_MAPPED);
	int pos1 = fresh1 && (f1 & LQOS_CACHE_MAPPED);
	int victim = 0;
	if (!fresh0)
		victim = 0;
	else if (!fresh1)
		victim = 1;
	else if (pos0 != pos1)
		victim = pos0 ? 1 : 0; /* a negative answer goes first */
	else if (!out->mapped && pos0) {
		/* Scan-resistant: an unmapped address (an Internet scan of the pools, mostly: each
		 * address once) takes only a mapped way not used since the last such miss in this
		 * set; finding both used, it marks them unused and is not cached (the prefix hash
		 * answers it again). A subscriber with a packet between two such misses keeps its
		 * way; an idle one (or an address that left the plan's traffic) gives it up. */
		int ref0 = (f0 & LQOS_CACHE_REF) != 0, ref1 = (f1 & LQOS_CACHE_REF) != 0;
		if (ref0 && ref1) {
			w0->flags = f0 & ~LQOS_CACHE_REF;
			w1->flags = f1 & ~LQOS_CACHE_REF;
			return;
		}
		if (ref0 != ref1)
			victim = ref0 ? 1 : 0;
		else
			victim = (f0 & LQOS_CACHE_NEWER) ? 1 : 0;
	} else
		victim = (f0 & LQOS_CACHE_NEWER) ? 1 : 0;
	struct lqos_cache_entry *ce = victim ? w1 : w0;
	struct lqos_cache_entry *other = victim ? w0 : w1;
	ce->addr = *addr;
	ce->epoch = epoch;
	ce->class_handle = out->class_handle;
	ce->slot = out->slot;
	ce->cpu = (__u16)out->cpu;
	ce->flags = LQOS_CACHE_VALID | LQOS_CACHE_NEWER | LQOS_CACHE_REF |
		    (out->mapped ? LQOS_CACHE_MAPPED : 0);
	other->flags &= ~LQOS_CACHE_NEWER;
}

static __always_inline __u32 lqos_rtt_bucket(__u32 us)
{
	__u32 i = 0;
	if (us > lqos_rtt_edges[15])
		i = 16;
	if (us > lqos_rtt_edges[(i + 7) & 31])
		i += 8;
	if (us > lqos_rtt_edges[(i + 3) & 31])
		i += 4;
	if (us > lqos_rtt_edges[(i + 1) & 31])
		i += 2;
	if (us > lqos_rtt_edges[i & 31])
		i += 1;
	return i & 31;
}

/* One RTT sample (µs) into the slot's histogram of `path`. */
static __always_inline int lqos_rtt_sample(__u32 slot, int path, __u32 us)
{
	if (us > 60u * 1000000u)
		return 0;
	if (us == 0)
		us = 1;
	struct lqos_rtt_hist *h = bpf_map_lookup_elem(&lqos_rtt_hist, &slot);
	__u32 b = lqos_rtt_bucket(us);
	if (h) {
		if (path == LQOS_PATH_ACCESS) {
			__sync_fetch_and_add(&h->buckets[0][b], 1);
			__sync_fetch_and_add(&h->sum_us[0], us);
		} else {
			__sync_fetch_and_add(&h->buckets[1][b], 1);
			__sync_fetch_and_add(&h->sum_us[1], us);
		}
	}
	struct lqos_stats *st = lqos_stats_get();
	if (st)
		st->rtt_samples++;
	return 1;
}

struct lqos_tcp {
	__u8 tcp;
	__u32 seq;
	__u32 tsval;
	__u32 tsecr;
	__u32 payload;
	__u8 has_ts;
	__u8 syn;
	__u8 rst;
};

/* TCP timestamps: the common NOP,NOP,TS layout first, then a bounded option walk. */
static __always_inline void lqos_tcp_ts(void *data_end, struct tcphdr *th, struct lqos_tcp *t)
{
	__u32 optlen = th->doff * 4;
	if (optlen <= sizeof(*th))
		return;
	optlen -= sizeof(*th);
	__u8 *opt = (__u8 *)(th + 1);
	if (optlen >= 12 && (void *)(opt + 12) <= data_end && opt[0] == 1 && opt[1] == 1 &&
	    opt[2] == 8 && opt[3] == 10) {
		t->tsval = bpf_ntohl(lqos_pkt_u32(opt + 4));
		t->tsecr = bpf_ntohl(lqos_pkt_u32(opt + 8));
		t->has_ts = 1;
		return;
	}
	__u32 pos = 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if (pos + 1 > optlen || pos > 40)
			return;
		__u8 *o = opt + pos;
		if ((void *)(o + 1) > data_end)
			return;
		__u8 kind = o[0];
		if (kind == 0)
			return;
		if (kind == 1) {
			pos += 1;
			continue;
		}
		if ((void *)(o + 2) > data_end)
			return;
		__u8 len = o[1];
		if (kind == 8 && len == 10) {
			if (pos + 10 > optlen || (void *)(o + 10) > data_end)
				return;
			t->tsval = bpf_ntohl(lqos_pkt_u32(o + 2));
			t->tsecr = bpf_ntohl(lqos_pkt_u32(o + 6));
			t->has_ts = 1;
			return;
		}
		if (len < 2)
			return;
		pos += len;
	}
}

/* How many times a CPU re-reads an entry another CPU is writing. The writer's part is a few
 * dozen stores (no helper call), but each re-read may wait for the line, and an interrupt on
 * the writer's CPU stretches it: 1024 reads cover microseconds. */
#define LQOS_FLOW_SPIN 1024

static __always_inline int lqos_key_eq(struct lqos_flow_key *a, struct lqos_flow_key *b)
{
	__u64 *x = (__u64 *)a, *y = (__u64 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* Multiply-xorshift over the five words of the key; the set is taken from the top bits. */
static __always_inline __u64 lqos_flow_hash(struct lqos_flow_key *k)
{
	__u64 *w = (__u64 *)k;
	__u64 h = w[0] * 0x9e3779b97f4a7c15ull ^ w[1] * 0xc2b2ae3d27d4eb4full ^
		  w[2] * 0x165667b19e3779f9ull ^ w[3] * 0xd6e8feb86659fd93ull ^
		  w[4] * 0xff51afd7ed558ccdull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h * 0x94d049bb133111ebull;
}

static __always_inline __u64 lqos_read_state(struct lqos_flow_entry *e)
{
	__u64 s = *(volatile __u64 *)&e->state;
	lqos_barrier();
	return s;
}

struct lqos_wait_ctx {
	struct lqos_flow_entry *e;
	__u64 s;
};

static long lqos_wait_step(__u64 i, void *ctx)
{
	struct lqos_wait_ctx *w = ctx;
	struct lqos_flow_entry *e = w->e;
	if (!e)
		return 1;
	w->s = lqos_read_state(e);
	return (w->s & 1) ? 0 : 1;
}

/* Waits (bounded) while another CPU writes the entry; returns the state then seen. A
 * bpf_loop (inlined by the verifier), so the verifier checks the step once. */
static __always_inline __u64 lqos_wait_written(struct lqos_flow_entry *e)
{
	struct lqos_wait_ctx w = { .e = e, .s = lqos_read_state(e) };
	if (w.s & 1)
		bpf_loop(LQOS_FLOW_SPIN, lqos_wait_step, &w, 0);
	return w.s;
}

static __always_inline int lqos_flow_live(__u64 s)
{
	return s >= 2 && !(s & 1);
}

/*
 * The flow entry of this key, created if needed. The table is an ARRAY of 4-way sets. A new
 * flow takes the first empty way, else a stale one (no packet for two flow generations, i.e. a
 * whole lqosd sweep interval; the oldest), else it is not tracked (flows_dropped). Creating
 * is a claim: compare-and-swap the way's state from the even value seen to odd, write the
 * key and zeroes, then make it even again. A CPU that finds a way being written waits for it
 * and re-checks the key, so two CPUs creating the same flow end in one entry.
 */
/* Index of the first way of the key's set. */
static __always_inline __u32 lqos_flow_first(struct lqos_flow_key *k)
{
	__u64 h = lqos_flow_hash(k);
	__u32 set = lqos_flow_shift >= 64 ? 0 : (__u32)(h >> (lqos_flow_shift & 63)) & lqos_flow_mask;
	return set * LQOS_FLOW_WAYS;
}

/* A packet of this flow at generation `gen`: the flow is not idle, and belongs to `slot`. */
static __always_inline void lqos_flow_touch(struct lqos_flow_entry *e, __u32 gen, __u32 slot)
{
	if (e->gen != gen)
		e->gen = gen;
	if (e->slot != slot)
		e->slot = slot;
}

/*
 * The slow path of lqos_flow_get: the key is in no live way. Waits for ways being written
 * (one may be this very flow, created by another CPU), else claims the first empty way or
 * the way idle longest if idle two generations or more. Returns the way (0..ways-1) holding
 * the flow, or -1 (not tracked: flows_dropped). A global function: the verifier checks it
 * once, not once per path of its callers (inlined, it exceeded the instruction budget).
 */
__attribute__((noinline)) int lqos_flow_claim(__u32 first, struct lqos_flow_key *k, __u32 slot,
					      __u32 gen)
{
	if (!k)
		return -1;
	struct lqos_stats *st = lqos_stats_get();
	struct lqos_flow_entry *v = 0;
	__u64 vs = 0;
	__u32 best_age = 1;
	int vway = -1;
	int empty = 0;
#pragma unroll
	for (int i = 0; i < LQOS_FLOW_WAYS; i++) {
		__u32 idx = first + i;
		struct lqos_flow_entry *e = bpf_map_lookup_elem(&lqos_flows, &idx);
		if (!e)
			return -1;
		__u64 s = lqos_wait_written(e);
		if (lqos_flow_live(s) && lqos_key_eq(&e->key, k)) {
			lqos_flow_touch(e, gen, slot);
			return i;
		}
		if (empty || (s & 1))
			continue;
		if (s == 0) {
			v = e, vs = 0, vway = i, empty = 1;
			continue;
		}
		__u32 age = gen - e->gen;
		if (age > best_age)
			v = e, vs = s, vway = i, best_age = age;
	}
	if (!v) {
		if (st)
			st->flows_dropped++;
		return -1;
	}
	/* One slot may open at most lqos_flow_budget flows per generation (a flood against or
	 * from one subscriber fills at most a bounded share of the table: its entries stay until
	 * idle for two generations). Counted per slot across CPUs; approximate at the edge. */
	__u64 *bw = bpf_map_lookup_elem(&lqos_slot_flows, &slot);
	if (bw) {
		__u64 w = *(volatile __u64 *)bw;
		if ((__u32)(w >> 32) != gen) {
			__sync_val_compare_and_swap(bw, w, ((__u64)gen << 32) | 1);
		} else if ((__u32)w >= lqos_flow_budget) {
			if (st)
				st->flows_over_budget++;
			return -1;
		} else {
			__sync_fetch_and_add(bw, 1);
		}
	}
	__u64 now = bpf_ktime_get_ns();
	if (__sync_val_compare_and_swap(&v->state, vs, vs + 1) != vs) {
		/* Another CPU claimed it first: maybe for this flow. */
		__u64 s2 = lqos_wait_written(v);
		if (lqos_flow_live(s2) && lqos_key_eq(&v->key, k))
			return vway;
		if (st)
			st->flows_dropped++;
		return -1;
	}
	v->key = *k;
	v->gen = gen;
	v->first_seen_ns = now;
	v->slot = slot;
	__builtin_memset(&v->dir[0], 0, sizeof(v->dir[0]));
	__builtin_memset(&v->dir[1], 0, sizeof(v->dir[1]));
	lqos_barrier();
	__sync_fetch_and_add(&v->state, 1); /* publish: even again */
	if (st)
		st->flows_created++;
	return vway;
}

static __always_inline struct lqos_flow_entry *lqos_flow_get(struct lqos_flow_key *k,
							     __u32 slot, int may_create)
{
	__u32 zero = 0;
	__u32 gen = 0;
	__u32 *gp = bpf_map_lookup_elem(&lqos_flow_gen, &zero);
	if (gp)
		gen = *gp;
	__u32 first = lqos_flow_first(k);
	/* Ways fill first to last, so a flow is mostly found in the first line or two. */
#pragma unroll
	for (int i = 0; i < LQOS_FLOW_WAYS; i++) {
		__u32 idx = first + i;
		struct lqos_flow_entry *e = bpf_map_lookup_elem(&lqos_flows, &idx);
		if (!e)
			return 0;
		if (lqos_flow_live(lqos_read_state(e)) && lqos_key_eq(&e->key, k)) {
			lqos_flow_touch(e, gen, slot);
			return e;
		}
	}
	if (!may_create)
		return 0;
	int way = lqos_flow_claim(first, k, slot, gen);
	if (way < 0)
		return 0;
	__u32 idx = first + ((__u32)way & (LQOS_FLOW_WAYS - 1));
	return bpf_map_lookup_elem(&lqos_flows, &idx);
}

/* Ports, protocol and TCP fields of one TCP/UDP packet into the flow key and `t`. */
static __always_inline int lqos_l4(void *data, void *data_end, struct lqos_pkt *p,
				   struct lqos_flow_key *k, int dir, struct lqos_tcp *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	__u32 off = p->l4_off;
	__u16 sport, rport;
	if (off > 128)
		return -1;
	if (p->l4_proto == IPPROTO_TCP) {
		struct tcphdr *th = data + off;
		if ((void *)(th + 1) > data_end)
			return -1;
		sport = bpf_ntohs(dir == LQOS_UP ? th->source : th->dest);
		rport = bpf_ntohs(dir == LQOS_UP ? th->dest : th->source);
		t->tcp = 1;
		t->seq = bpf_ntohl(th->seq);
		t->syn = th->syn;
		t->rst = th->rst;
		__u32 hdrs = (off - p->l3_off) + th->doff * 4;
		t->payload = p->ip_len > hdrs ? p->ip_len - hdrs : 0;
		lqos_tcp_ts(data_end, th, t);
	} else {
		struct udphdr *uh = data + off;
		if ((void *)(uh + 1) > data_end)
			return -1;
		sport = bpf_ntohs(dir == LQOS_UP ? uh->source : uh->dest);
		rport = bpf_ntohs(dir == LQOS_UP ? uh->dest : uh->source);
	}
	/* subscriber_port, remote_port, protocol, pad: one store (see lqos_addrs). */
	((__u64 *)k)[4] = (__u64)sport | ((__u64)rport << 16) | ((__u64)p->l4_proto << 32);
	return 0;
}

/* Flow table, retransmits and RTT for one TCP/UDP packet (after lqos_l4). */
static __always_inline void lqos_track(struct lqos_flow_key *k, struct lqos_tcp *tp, int dir,
				       __u32 slot, __u64 bytes, struct lqos_slot_counters *sc,
				       struct lqos_settings *cfg)
{
	struct lqos_tcp t = *tp;
	int tcp = t.tcp;
	if (tcp && sc)
		sc->tcp_packets[dir & 1] += 1;
	int d = dir & 1;
	/* A TCP flow is created by the subscriber's side only, and never by a reset: SYN floods,
	 * port scans and forged resets from the Internet take no room in the table (a connection
	 * from outside gets its entry from the subscriber's SYN-ACK). */
	int may_create = !tcp || (d == LQOS_UP && !t.rst);
	struct lqos_flow_entry *f = lqos_flow_get(k, slot, may_create);
	if (!f)
		return;
	struct lqos_flow_dir *my = d ? &f->dir[1] : &f->dir[0];
	struct lqos_flow_dir *other = d ? &f->dir[0] : &f->dir[1];
	__sync_fetch_and_add(&my->bytes, bytes);
	__sync_fetch_and_add(&my->packets, 1);
	if (!tcp)
		return;

	/* Retransmit: a data segment at or below the highest sequence already seen. */
	if (t.payload > 0 && !t.syn) {
		if ((my->flags & LQOS_FLOW_SEQ_VALID) && (__s32)(t.seq - my->high_seq) <= 0) {
			my->retransmits += 1;
			if (sc)
				sc->retransmits[d] += 1;
		} else {
			my->high_seq = t.seq;
			my->flags |= LQOS_FLOW_SEQ_VALID;
		}
	}

	if (!t.has_ts)
		return;
	__u64 now = 0;
	/* This packet's TSecr may echo the other direction's pending TSval (the other direction
	 * may run on another CPU: the pending word is read once and cleared by compare-and-swap,
	 * so one echo makes one sample). */
	__u64 pend = *(volatile __u64 *)&other->pending;
	if (pend && t.tsecr) {
		__s32 diff = (__s32)(t.tsecr - (__u32)(pend >> 32));
		if (diff == 0) {
			if (__sync_val_compare_and_swap(&other->pending, pend, 0) == pend) {
				now = bpf_ktime_get_ns();
				__u32 us = (__u32)(now / 1000) - (__u32)pend;
				/* Echoed by the subscriber: the TSval came from the Internet host. */
				if (lqos_rtt_sample(slot, d == LQOS_UP ? LQOS_PATH_ACCESS
								     : LQOS_PATH_UPSTREAM, us)) {
					my->rtt_us = us ? us : 1;
					my->rtt_samples += 1;
				}
				my->last_ts_ns = now;
			}
		} else if (diff > 0) {
			/* the echo went past it: never matches */
			__sync_val_compare_and_swap(&other->pending, pend, 0);
		}
	}
	/* A new TSval of this direction may start a sample. */
	if (!(my->flags & LQOS_FLOW_TS_VALID) || (__s32)(t.tsval - my->last_tsval) > 0) {
		my->last_tsval = t.tsval;
		my->flags |= LQOS_FLOW_TS_VALID;
		if (*(volatile __u64 *)&my->pending == 0) {
			__u32 every = cfg ? cfg->rtt_sample_every : 1;
			__u32 n = my->ts_counter++;
			if (every <= 1 || n % every == 0) {
				if (!now)
					now = bpf_ktime_get_ns();
				__u64 stamp = ((__u32)(now / 1000)) | 1u;
				*(volatile __u64 *)&my->pending = ((__u64)t.tsval << 32) | stamp;
				my->last_ts_ns = now;
			}
		}
	}
}

/* One in N unmapped packets per CPU goes to the bounded unknown-address table. */
static __always_inline void lqos_unknown_sample(struct lqos_addr *addr, int dir, __u64 bytes,
						struct lqos_settings *cfg)
{
	struct lqos_stats *st = lqos_stats_get();
	if (!st)
		return;
	__u32 every = cfg && cfg->unknown_sample_every ? cfg->unknown_sample_every : 16;
	/* Countdown instead of a modulo: one in `every` packets per CPU is recorded. */
	if (st->sample_counter) {
		st->sample_counter--;
		return;
	}
	st->sample_counter = every - 1;
	int d = dir & 1;
	struct lqos_unknown *u = bpf_map_lookup_elem(&lqos_unknown, addr);
	if (!u) {
		struct lqos_unknown n = {};
		long err = bpf_map_update_elem(&lqos_unknown, addr, &n, BPF_NOEXIST);
		u = bpf_map_lookup_elem(&lqos_unknown, addr);
		if (!u) {
			if (err)
				st->unknown_dropped++;
			return;
		}
	}
	__sync_fetch_and_add(&u->bytes[d], bytes * every);
	__sync_fetch_and_add(&u->packets[d], every);
}

static __always_inline struct lqos_if_config *lqos_if_get(__u32 ifindex)
{
	__u32 idx = ifindex & (LQOS_IF_SLOTS - 1);
	struct lqos_if_config *cfg = bpf_map_lookup_elem(&lqos_if_config, &idx);
	if (!cfg || cfg->ifindex != ifindex || cfg->direction == LQOS_DIR_UNSET)
		return 0;
	return cfg;
}

static __always_inline struct lqos_settings *lqos_settings_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&lqos_settings, &zero);
}

SEC("xdp")
int lqos_xdp(struct xdp_md *ctx)
{
	struct lqos_if_config *ifc = lqos_if_get(ctx->ingress_ifindex);
	if (!ifc)
		return XDP_PASS;

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct lqos_pkt p = {};
	if (lqos_parse(data, data_end, 0, 0, &p) < 0)
		return XDP_PASS;

	int upload;
	__u32 offset = 0;
	__u32 direction = ifc->direction;
	if (direction == LQOS_DIR_TO_INTERNET) {
		upload = 0;
	} else if (direction == LQOS_DIR_TO_NETWORK) {
		upload = 1;
	} else {
		/* Stick: the direction tag (inner of two) says where the frame came from. The tag
		 * itself is swapped by lqos_tc_stick_ingress, where it sits in skb->vlan_tci. */
		if (p.dir_tci_off == LQOS_TAG_NONE)
			return XDP_PASS;
		if (p.dir_vid == ifc->internet_vid) {
			upload = 0;
		} else if (p.dir_vid == ifc->isp_vid) {
			upload = 1;
			offset = ifc->stick_offset;
		} else {
			return XDP_PASS;
		}
	}

	struct lqos_flow_key k = {};
	if (lqos_addrs(data, data_end, &p, upload, &k) < 0)
		return XDP_PASS;
	if (lqos_bench_spread_on)
		lqos_bench_spread(&k.subscriber);
	int dir = upload ? LQOS_UP : LQOS_DOWN;
	/* Filled by lqos_l4 before any use: no zeroing on the lean path. */
	struct lqos_tcp t;
	int track = lqos_track_flows && p.l4_proto && lqos_l4(data, data_end, &p, &k, dir, &t) == 0;

	struct lqos_class c;
	lqos_classify(&k.subscriber, &c);
	/* Flows, RTT and retransmits of subscribers only: an unmapped address's flows belong to no
	 * circuit (its traffic is in the unknown table), and an Internet scan would otherwise
	 * create a flow per probe and fill the table. The table is touched only after
	 * classification, so a scan never touches it (looking up the set first, to overlap the two
	 * cold loads, measured no gain for subscribers and cost dark-space scans ~130 ns). */
	track = track && c.mapped;
	__u64 bytes = (__u64)(data_end - data);
	__u32 slot = c.slot;
	__u32 sci = bpf_get_smp_processor_id() * lqos_max_slots + slot;
	struct lqos_slot_counters *sc = bpf_map_lookup_elem(&lqos_slot_counters, &sci);
	if (sc) {
		sc->bytes[dir] += bytes;
		sc->packets[dir] += 1;
	}
	struct lqos_settings *cfg = lqos_settings_get();
	if (!c.mapped)
		lqos_unknown_sample(&k.subscriber, dir, bytes, cfg);
	if (track)
		lqos_track(&k, &t, dir, slot, bytes, sc, cfg);

	if (!c.mapped || (cfg && (cfg->flags & LQOS_SET_OBSERVE)))
		return XDP_PASS;

	__u32 handle = c.class_handle + (offset << 16);
	/* Exactly 8 bytes of metadata, whatever the frame already carried (a reused
	 * BPF_PROG_TEST_RUN buffer does). Optional: without it tc does its own lookup. */
	long have = (long)ctx->data - (long)ctx->data_meta;
	if (have < 0 || have > 32)
		have = 0;
	if (bpf_xdp_adjust_meta(ctx, (int)have - (int)sizeof(struct lqos_xdp_meta)) == 0) {
		void *meta = (void *)(long)ctx->data_meta;
		void *d = (void *)(long)ctx->data;
		struct lqos_xdp_meta *m = meta;
		if ((void *)(m + 1) <= d) {
			m->magic = LQOS_META_MAGIC;
			m->class_handle = handle;
		}
	} else {
		struct lqos_stats *st = lqos_stats_get();
		if (st)
			st->no_metadata++;
	}
	return bpf_redirect_map(&lqos_cpu_map, c.cpu + offset, XDP_PASS);
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
	struct lqos_settings *cfg = lqos_settings_get();
	if (cfg && (cfg->flags & LQOS_SET_OBSERVE))
		return TC_ACT_OK;
	struct lqos_xdp_meta *m = data_meta;
	if ((void *)(m + 1) <= data && m->magic == LQOS_META_MAGIC) {
		if (m->class_handle)
			lqos_set_class(skb, m->class_handle);
		return TC_ACT_OK;
	}

	struct lqos_if_config *ifc = lqos_if_get(skb->ifindex);
	if (!ifc)
		return TC_ACT_OK;
	struct lqos_pkt p = {};
	if (lqos_parse(data, data_end, skb->vlan_present, skb->vlan_tci, &p) < 0)
		return TC_ACT_OK;

	/* Egress is the opposite direction of the same interface's ingress. */
	int upload;
	__u32 offset = 0;
	if (ifc->direction == LQOS_DIR_TO_INTERNET) {
		upload = 1;
	} else if (ifc->direction == LQOS_DIR_TO_NETWORK) {
		upload = 0;
	} else {
		/* Stick, after the swap: the network VLAN carries downloads. */
		if (p.dir_tci_off == LQOS_TAG_NONE)
			return TC_ACT_OK;
		if (p.dir_vid == ifc->isp_vid) {
			upload = 0;
		} else if (p.dir_vid == ifc->internet_vid) {
			upload = 1;
			offset = ifc->stick_offset;
		} else {
			return TC_ACT_OK;
		}
	}

	struct lqos_flow_key k = {};
	if (lqos_addrs(data, data_end, &p, upload, &k) < 0)
		return TC_ACT_OK;
	struct lqos_class c;
	lqos_classify(&k.subscriber, &c);
	if (!c.mapped)
		return TC_ACT_OK;
	lqos_set_class(skb, c.class_handle + (offset << 16));
	return TC_ACT_OK;
}

/*
 * On a stick: frames on either VLAN get the other VLAN and go straight back out of the
 * same NIC, where lqos_tc_egress and the HTB tree shape them. The direction tag is the inner
 * one of two (in the frame data) or the only one, which the kernel (or the NIC's VLAN
 * offload) has usually moved to skb->vlan_tci by now: then it is swapped there.
 */
SEC("classifier")
int lqos_tc_stick_ingress(struct __sk_buff *skb)
{
	struct lqos_if_config *ifc = lqos_if_get(skb->ifindex);
	if (!ifc || ifc->direction != LQOS_DIR_STICK)
		return TC_ACT_OK;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct lqos_pkt p = {};
	__u32 hw = skb->vlan_present;
	__u16 hw_tci = skb->vlan_tci;
	__u16 hw_proto = skb->vlan_proto;
	/* Only the tags matter here: parse errors past L2 are fine. */
	lqos_parse(data, data_end, hw, hw_tci, &p);
	if (p.dir_tci_off == LQOS_TAG_NONE)
		return TC_ACT_OK;
	__u16 vid = p.dir_vid;
	__u16 new_vid;
	if (vid == ifc->internet_vid)
		new_vid = ifc->isp_vid;
	else if (vid == ifc->isp_vid)
		new_vid = ifc->internet_vid;
	else
		return TC_ACT_OK;

	if (p.dir_tci_off == LQOS_TAG_HW) {
		__u16 tci = (hw_tci & 0xf000) | (new_vid & 0x0fff);
		if (bpf_skb_vlan_pop(skb) < 0)
			return TC_ACT_OK;
		if (bpf_skb_vlan_push(skb, hw_proto, tci) < 0)
			return TC_ACT_SHOT; /* tag gone: never leak it onto the wrong VLAN */
	} else {
		__u32 off = (__u32)p.dir_tci_off;
		if (off > 32)
			return TC_ACT_OK;
		__be16 *tcip = data + off;
		if ((void *)(tcip + 1) > data_end)
			return TC_ACT_OK;
		__u16 tci = bpf_ntohs(*tcip);
		*tcip = bpf_htons((tci & 0xf000) | (new_vid & 0x0fff));
	}
	return bpf_redirect(skb->ifindex, 0);
}
