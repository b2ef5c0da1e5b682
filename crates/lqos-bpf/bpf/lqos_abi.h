/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lqos_abi.h — every layout shared between the eBPF programs and the Rust side
 * (crates/lqos-bpf/src/abi.rs mirrors each struct with a compile-time size assert).
 * Change both files together.
 */
#ifndef LQOS_ABI_H
#define LQOS_ABI_H

#include <linux/types.h>

/* Interface roles (lqos_if_config.direction). */
#define LQOS_DIR_UNSET 0
/* Faces the Internet: XDP ingress sees downloads (subscriber = dst). */
#define LQOS_DIR_TO_INTERNET 1
/* Faces the subscribers: XDP ingress sees uploads (subscriber = src). */
#define LQOS_DIR_TO_NETWORK 2
/* One NIC, two VLANs: direction from the VLAN tag (the inner one when there are two). */
#define LQOS_DIR_STICK 3

/* Traffic direction, the index of every [2] array below. */
#define LQOS_DOWN 0 /* towards the subscriber */
#define LQOS_UP 1   /* from the subscriber */

/* RTT path, the index of the RTT arrays. */
#define LQOS_PATH_ACCESS 0   /* shaper -> subscriber -> shaper (includes lqos's queueing) */
#define LQOS_PATH_UPSTREAM 1 /* shaper -> Internet host -> shaper */

/* XDP metadata magic ("LQOS"), so tc never trusts stray metadata. */
#define LQOS_META_MAGIC 0x4c514f53u

/* Interface role array: index = ifindex & (LQOS_IF_SLOTS - 1); the entry stores the ifindex. */
#define LQOS_IF_SLOTS 1024
/* Default entries per CPU of the classification cache (2-way sets; LoadOptions::cache_entries). */
#define LQOS_CACHE_ENTRIES 65536
/* RTT histogram buckets per path (upper bounds in lqos_kern.c / abi.rs RTT_BUCKET_UPPER_US). */
#define LQOS_RTT_BUCKETS 32

/* lqos_cache_entry.flags */
#define LQOS_CACHE_VALID 1u
#define LQOS_CACHE_MAPPED 2u
#define LQOS_CACHE_NEWER 4u  /* the way of its set filled last (the other one is replaced next) */
#define LQOS_CACHE_REF 8u    /* used since an unmapped address last found both ways mapped */

/* lqos_settings.flags */
#define LQOS_SET_OBSERVE 1u /* count and measure, never redirect or set a class */

/* Every address is 16 bytes: IPv6 as is, IPv4 as twelve 0xFF bytes + the address. */
struct lqos_addr {
	__u8 bytes[16];
};

/* LPM trie key: prefixlen counts bits of `addr` (IPv4 prefixes are + 96). 20 bytes. */
struct lqos_lpm_key {
	__u32 prefixlen;
	struct lqos_addr addr;
};

/* Mapping value (LPM trie). 32 bytes. */
struct lqos_ip_info {
	__u32 cpu;           /* CPU that serves the class's queue (cpumap index) */
	__u32 class_handle;  /* major << 16 | minor of the HTB class */
	__u32 slot;          /* dense counter slot of the circuit (0 = unshaped) */
	__u32 flags;         /* reserved, 0 */
	__u64 circuit_hash;
	__u64 device_hash;
};

/* Classification cache entry: tag (the address) + epoch + LPM result. 32 bytes, 8-aligned so
 * that the program compares its tag with two 8-byte loads (4-aligned: four, plus shifts). */
struct __attribute__((aligned(8))) lqos_cache_entry {
	struct lqos_addr addr;
	__u32 epoch;
	__u32 class_handle;
	__u32 slot;
	__u16 cpu;
	__u16 flags;         /* LQOS_CACHE_* */
};

/* One 2-way set of the classification cache: one 64-byte line. lqos_cache is an ARRAY of
 * possible CPUs × sets, index = cpu × sets + set: each CPU owns its own block. */
struct lqos_cache_set {
	struct lqos_cache_entry way[2];
};

/* Interface role, at index ifindex & (LQOS_IF_SLOTS - 1) of lqos_if_config. 16 bytes. */
struct lqos_if_config {
	__u32 ifindex;       /* must equal the packet's ifindex, else the entry is someone else's */
	__u32 direction;     /* LQOS_DIR_* */
	__u16 internet_vid;  /* stick only: VLAN facing the Internet */
	__u16 isp_vid;       /* stick only: VLAN facing the subscribers */
	__u32 stick_offset;  /* stick only: added to CPU and class major for uploads */
};

/* Global switches (lqos_settings[0]). 16 bytes. */
struct lqos_settings {
	__u32 flags;                /* LQOS_SET_* */
	__u32 rtt_sample_every;     /* sample one in N new TSvals per flow direction (0 = 1) */
	__u32 unknown_sample_every; /* record one in N unmapped packets per CPU (0 = 16) */
	__u32 reserved;
};

/* Counters of one slot on one CPU (lqos_slot_counters is an ARRAY indexed
 * cpu × slots + slot: each CPU's counters are one block, few pages for its TLB). 64 bytes. */
struct lqos_slot_counters {
	__u64 bytes[2];       /* L2 bytes, [LQOS_DOWN], [LQOS_UP] */
	__u64 packets[2];
	__u64 tcp_packets[2];
	__u64 retransmits[2];
};

/* RTT histogram of one slot (shared, atomic adds). 272 bytes. */
struct lqos_rtt_hist {
	__u32 buckets[2][LQOS_RTT_BUCKETS]; /* [path][bucket] sample counts */
	__u64 sum_us[2];                    /* [path] sum of samples, microseconds */
};

/* Flow key: the subscriber side first, whatever the packet's direction. 40 bytes. */
struct lqos_flow_key {
	struct lqos_addr subscriber;
	struct lqos_addr remote;
	__u16 subscriber_port;  /* host byte order */
	__u16 remote_port;
	__u8 protocol;          /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad[3];
};

/* One direction of a flow: written by the packets of that direction (bytes and packets with
 * atomic adds, so several CPUs never lose a count). 64 bytes, one cache line. */
struct lqos_flow_dir {
	__u64 bytes;
	__u64 packets;
	__u64 pending;          /* TSval << 32 | (µs clock, low 32 bits, | 1) waiting for its echo
				 * from the other direction (which clears it); 0 = none */
	__u64 last_ts_ns;       /* last clock read by this direction (RTT timestamp or sample) */
	__u32 last_tsval;       /* newest TSval seen (valid with LQOS_FLOW_TS_VALID) */
	__u32 high_seq;         /* highest sequence number of a data segment */
	__u32 retransmits;
	__u32 ts_counter;       /* new TSvals seen (sampling) */
	__u32 rtt_us;           /* last RTT sample timed by this direction's echoes:
				 * DOWN: upstream path, UP: access path */
	__u32 rtt_samples;
	__u32 flags;            /* LQOS_FLOW_* */
	__u32 reserved;
};
#define LQOS_FLOW_SEQ_VALID 1
#define LQOS_FLOW_TS_VALID 2

/* Ways per set of the flow table (4: at 3/8 load a 2-way set refused ~6 % of new flows, a
 * 4-way set ~1.6 %; ways fill first to last, so a hit mostly reads the first one or two). */
#define LQOS_FLOW_WAYS 4

/* Flow table entry (lqos_flows is an ARRAY of LQOS_FLOW_WAYS-way sets: index = set × ways +
 * way; set from an inline hash of the key). 192 bytes: the key line and one line per direction. */
struct lqos_flow_entry {
	struct lqos_flow_key key;
	__u64 state;            /* 0 empty, odd being written, even >= 2 live (bumped per owner) */
	__u64 first_seen_ns;    /* bpf_ktime_get_ns() at creation */
	__u32 gen;              /* lqos_flow_gen at the flow's last packet (idle = stale) */
	__u32 slot;             /* circuit slot of the subscriber address */
	struct lqos_flow_dir dir[2]; /* [LQOS_DOWN], [LQOS_UP] */
};

/*
 * Exact-prefix hash in front of the LPM trie (lqos_pfx_hash, lqos_pfx_lens). Written by
 * lqosd through mmap with a sequence word per entry (odd while being written); the trie stays
 * the source of truth. A classification-cache miss probes the hash for each of the longest
 * LQOS_PFX_LENS distinct prefix lengths of the address's family, longest first: the first hit
 * is the longest match. All probes missing means "unmapped" only when the list is complete
 * and nothing of those lengths overflowed; in every other case (and on a torn read) the
 * program walks the trie.
 *
 * Key of a prefix: the 128-bit address as two big-endian numbers (k0 = bits 0..63, k1 = bits
 * 64..127) with the bits past the prefix length cleared, and the length (IPv4 + 96).
 * Bucket pair: lqos_pfx_hash_key() in lqos_kern.c / pfx.rs bucket_pair().
 */
#define LQOS_PFX_WAYS 2     /* entries per bucket (one 64-byte line) */
#define LQOS_PFX_LENS 8     /* prefix lengths listed per family */
#define LQOS_PFX_FAM_V4 0   /* addresses whose first 96 bits are all ones (IPv4) */
#define LQOS_PFX_FAM_V6 1   /* every other address */

/* One exact prefix. 32 bytes. */
struct lqos_pfx_entry {
	__u32 seq;           /* even: stable; odd: being written */
	__u8 len1;           /* prefix length + 1; 0 = empty way */
	__u8 pad;
	__u16 cpu;
	__u64 k0;
	__u64 k1;
	__u32 class_handle;
	__u32 slot;
};

/* lqos_pfx_hash is an ARRAY of these (a power of two of them). 64 bytes. */
struct lqos_pfx_bucket {
	struct lqos_pfx_entry way[LQOS_PFX_WAYS];
};

/* The longest prefix lengths present in one family. 16 bytes (two words, read as such). */
struct lqos_pfx_family {
	__u8 n;              /* lengths listed (0..LQOS_PFX_LENS) */
	__u8 complete;       /* 1: the family has no prefix of an unlisted length */
	__u8 overflow;       /* bit i: a prefix of lens[i] is not in the hash (miss -> trie) */
	__u8 near;           /* 1: the family's near bitmap below is exact (see there) */
	__u8 pad[4];
	__u8 lens[LQOS_PFX_LENS]; /* longest first, in bits of the 128-bit key */
};

/*
 * Near bitmaps, one per family, 65536 bits each: bit i is set while some prefix of the family
 * may cover an address whose near index is i. IPv4: the top 16 bits of the address (a prefix
 * shorter than /16 sets every bit it covers). Other addresses: the top 32 bits times
 * 0x9e3779b1, top 16 bits of the 32-bit product; valid only while no prefix of the family is
 * shorter than /32. A clear bit answers "unmapped" without probing the hash: scans of space
 * no prefix covers cost one hot cache line. Words are written whole, outside `seq`: a bit is
 * set before a batch ends that adds a prefix under it, and cleared only after its last prefix
 * left the hash.
 */
#define LQOS_PFX_NEAR_WORDS 1024

/* lqos_pfx_lens[0]. All zero (as created) = nothing listed, not complete: always the trie.
 * 40 + 16384 bytes. */
struct lqos_pfx_lens {
	__u32 seq;           /* even: stable; odd: being written (fam only) */
	__u32 pad;
	struct lqos_pfx_family fam[2]; /* [LQOS_PFX_FAM_V4], [LQOS_PFX_FAM_V6] */
	__u64 near[2][LQOS_PFX_NEAR_WORDS];
};

/* Sampled unmapped address (values are estimates: samples × sample rate). 32 bytes. */
struct lqos_unknown {
	__u64 bytes[2];
	__u64 packets[2];
};

/* Per-CPU data-plane health counters (lqos_stats[0]). 96 bytes. */
struct lqos_stats {
	__u64 flows_created;
	__u64 flows_dropped;    /* flow table full */
	__u64 unknown_dropped;  /* unknown table full */
	__u64 rtt_samples;
	__u64 cache_misses;
	__u64 no_metadata;      /* adjust_meta refused: tc classifies on its own */
	__u64 sample_counter;   /* internal: drives unknown-address sampling */
	__u64 bench_counter;    /* internal: benchmark address spread */
	__u64 trie_lookups;     /* cache misses the prefix hash could not answer */
	__u64 pfx_torn;         /* prefix-hash reads that met a write (then the trie) */
	__u64 pfx_dark;         /* cache misses the near bitmap answered "unmapped" alone */
	__u64 flows_over_budget; /* new flows refused: their slot opened its budget this generation */
};

/* XDP metadata written in front of the frame for the tc egress classifier. 8 bytes. */
struct lqos_xdp_meta {
	__u32 magic;         /* LQOS_META_MAGIC */
	__u32 class_handle;
};

#endif
