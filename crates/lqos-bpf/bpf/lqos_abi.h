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
/* One NIC, two VLANs: direction from the VLAN tag. */
#define LQOS_DIR_STICK 3

/* XDP metadata magic ("LQOS"), so tc never trusts stray metadata. */
#define LQOS_META_MAGIC 0x4c514f53u

/* Hot-cache entry flag: negative entry (address not in the trie). */
#define LQOS_CACHE_NEGATIVE 1u

/* Every address is 16 bytes: IPv6 as is, IPv4 as twelve 0xFF bytes + the address. */
struct lqos_addr {
	__u8 bytes[16];
};

/* LPM trie key: prefixlen counts bits of `addr` (IPv4 prefixes are + 96). 20 bytes. */
struct lqos_lpm_key {
	__u32 prefixlen;
	struct lqos_addr addr;
};

/* Mapping value (trie and hot cache). 24 bytes. */
struct lqos_ip_info {
	__u32 cpu;           /* CPU that serves the class's queue (cpumap index) */
	__u32 class_handle;  /* major << 16 | minor of the HTB class */
	__u64 circuit_hash;
	__u64 device_hash;
};

/* Hot-cache value: a mapping (or a negative result) tagged with the epoch it was found in. 32 bytes. */
struct lqos_cache_entry {
	struct lqos_ip_info info;
	__u32 epoch;
	__u32 flags;
};

/* Per-interface configuration, keyed by ifindex in lqos_if_config. 16 bytes. */
struct lqos_if_config {
	__u32 direction;     /* LQOS_DIR_* */
	__u16 internet_vid;  /* stick only: VLAN facing the Internet */
	__u16 isp_vid;       /* stick only: VLAN facing the subscribers */
	__u32 stick_offset;  /* stick only: added to CPU and class major for uploads */
	__u32 flags;         /* reserved, 0 */
};

/* Per-CPU host counter, keyed by the subscriber address. 48 bytes. */
struct lqos_host_counter {
	__u64 download_bytes;
	__u64 download_packets;
	__u64 upload_bytes;
	__u64 upload_packets;
	__u64 last_seen_ns;  /* bpf_ktime_get_boot_ns() of the last packet on this CPU */
	__u32 class_handle;  /* last class handle seen (0 = unmapped) */
	__u32 reserved;
};

/* XDP metadata written in front of the frame for the tc egress classifier. 8 bytes. */
struct lqos_xdp_meta {
	__u32 magic;         /* LQOS_META_MAGIC */
	__u32 class_handle;
};

#endif
