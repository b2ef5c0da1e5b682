//! Compiles every `bpf/*.c` with clang (`-target bpf -O2 -g`) into `OUT_DIR/<name>.o`.
//! `BPF_CLANG` overrides the compiler. A missing clang fails the build with the apt packages.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let bpf_dir = manifest.join("bpf");
    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang".to_string());
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    println!("cargo:rerun-if-changed={}", bpf_dir.display());

    let mut sources = Vec::new();
    let entries = match std::fs::read_dir(&bpf_dir) {
        Ok(e) => e,
        Err(err) => panic!("lqos-bpf: cannot read {}: {err}", bpf_dir.display()),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("c") => {
                println!("cargo:rerun-if-changed={}", path.display());
                sources.push(path);
            }
            Some("h") => println!("cargo:rerun-if-changed={}", path.display()),
            _ => {}
        }
    }
    sources.sort();

    // `linux/types.h` wants `asm/types.h`, which Debian keeps under the multiarch directory
    // (gcc-multilib would add an /usr/include/asm link); point clang there directly.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = std::path::PathBuf::from(format!("/usr/include/{arch}-linux-gnu"));

    for src in sources {
        let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("prog").to_string();
        let obj = out_dir.join(format!("{stem}.o"));
        let status = Command::new(&clang)
            .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
            .arg("-I")
            .arg(&bpf_dir)
            .arg("-idirafter")
            .arg(&multiarch)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("lqos-bpf: {clang} failed on {} ({s})", src.display()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                "lqos-bpf: `{clang}` not found. The eBPF programs are compiled with clang: \
                 install it with `apt-get install clang llvm libbpf-dev` \
                 (or set BPF_CLANG to a clang binary)"
            ),
            Err(err) => panic!("lqos-bpf: cannot run `{clang}`: {err}"),
        }
    }
}
