//! What a record says of where it ran: the machine, its CPU, the git revision, peak memory.

use std::path::Path;

/// Peak resident memory of this process since the last [`reset_peak_rss`], in MiB (Linux).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the kernel's peak-RSS counter so each run reports its own peak (Linux `clear_refs` 5).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Host name, CPU (with its family, model and widest vector instructions) and libtorch's thread count.
pub fn machine() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
    let cpu = cpu(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    format!("{host}; {cpu}; {} threads", tch::get_num_threads())
}

/// The CPU as `/proc/cpuinfo` describes its first processor: model name, then family, model and the
/// widest vector extension. Virtual machines often give only a generic name ("AMD EPYC"), yet libtorch
/// picks its kernels by the vector extension and the float results of a run follow the kernels: the
/// family, model and extension tell two such machines apart.
fn cpu(cpuinfo: &str) -> String {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let name = field("model name").unwrap_or_else(|| "unknown cpu".into());
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let vector = if has("avx512f") {
        "AVX-512"
    } else if has("avx2") {
        "AVX2"
    } else if flags.is_empty() {
        "flags unknown"
    } else {
        "no AVX2"
    };
    match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family} model {model}, {vector})"),
        _ => format!("{name} ({vector})"),
    }
}

/// The git revision of the working tree (`-dirty` when it has changes), or `unknown`.
pub fn revision(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git").args(args).current_dir(root).output().ok().filter(|o| o.status.success())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(o) => {
            let rev = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_names_family_model_and_vector_extension() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n\
                    model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 avx512f avx512dq\n\n\
                    processor\t: 1\ncpu family\t: 99\n";
        assert_eq!(cpu(info), "AMD EPYC (family 26 model 2, AVX-512)");
        let older = "model name\t: Intel(R) Xeon(R) Processor\ncpu family\t: 6\nmodel\t\t: 85\nflags\t: sse2 avx2\n";
        assert_eq!(cpu(older), "Intel(R) Xeon(R) Processor (family 6 model 85, AVX2)");
        assert_eq!(cpu(""), "unknown cpu (flags unknown)");
    }
}
