//! What this machine offers, read from the OS once at start: cores, memory, a GPU if one is
//! visible. The heartbeat carries these with the node's own limits applied.

use std::path::Path;

/// The machine as detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Logical CPU cores available to this process.
    pub cores: u32,
    /// Total memory, MiB (0 when unknown).
    pub mem_mb: u64,
    /// A GPU's name, when one is visible.
    pub gpu: Option<String>,
}

/// Reads the machine's cores, memory and GPU.
pub fn detect() -> Machine {
    Machine {
        cores: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        mem_mb: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| mem_total_mb(&t))
            .unwrap_or(0),
        gpu: detect_gpu(Path::new("/")),
    }
}

/// `MemTotal` of a /proc/meminfo text, in MiB.
fn mem_total_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// An NVIDIA GPU from its driver's /proc entry, or any DRM card's PCI vendor under `root`.
fn detect_gpu(root: &Path) -> Option<String> {
    let nvidia = root.join("proc/driver/nvidia/gpus");
    if let Ok(mut entries) = std::fs::read_dir(&nvidia)
        && let Some(Ok(entry)) = entries.next()
    {
        let model = std::fs::read_to_string(entry.path().join("information"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("Model:"))
                    .map(|l| l.trim_start_matches("Model:").trim().to_string())
            });
        return Some(model.unwrap_or_else(|| "nvidia".into()));
    }
    let drm = std::fs::read_dir(root.join("sys/class/drm")).ok()?;
    for entry in drm.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("card") || name.contains('-') {
            continue;
        }
        let Ok(vendor) = std::fs::read_to_string(entry.path().join("device/vendor")) else {
            continue;
        };
        let label = match vendor.trim() {
            "0x10de" => "nvidia",
            "0x1002" => "amd",
            "0x8086" => "intel",
            // Virtual display adapters (QEMU, VirtualBox, VMware) are not compute devices.
            _ => continue,
        };
        return Some(label.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_read_in_mib() {
        let text = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        assert_eq!(mem_total_mb(text), Some(24_000));
        assert_eq!(mem_total_mb("nothing"), None);
    }

    #[test]
    fn gpus_are_found_from_driver_files_and_virtual_cards_ignored() {
        let root = tempfile::tempdir().expect("tmp");
        assert_eq!(detect_gpu(root.path()), None);
        let card = root.path().join("sys/class/drm/card0/device");
        std::fs::create_dir_all(&card).expect("mkdir");
        std::fs::write(card.join("vendor"), "0x1234\n").expect("write");
        assert_eq!(detect_gpu(root.path()), None, "virtual adapter ignored");
        std::fs::write(card.join("vendor"), "0x1002\n").expect("write");
        assert_eq!(detect_gpu(root.path()).as_deref(), Some("amd"));
        let nv = root.path().join("proc/driver/nvidia/gpus/0000:01:00.0");
        std::fs::create_dir_all(&nv).expect("mkdir");
        std::fs::write(nv.join("information"), "Model: \t NVIDIA A100\nIRQ: 1\n").expect("write");
        assert_eq!(detect_gpu(root.path()).as_deref(), Some("NVIDIA A100"));
    }

    #[test]
    fn this_machine_has_cores_and_memory() {
        let m = detect();
        assert!(m.cores >= 1);
        assert!(m.mem_mb > 0, "/proc/meminfo is readable on Linux");
    }
}
