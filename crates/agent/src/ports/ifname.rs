//! What a port's `system-name` may be, per platform.
//!
//! On Linux it is the host interface the datapath attaches (a tap or veth
//! name): the kernel's own rule (`dev_valid_name`): 1 to 15 bytes
//! (`IFNAMSIZ` - 1), not `.` or `..`, no `/`, `:`, NUL or whitespace.
//!
//! On Windows it is the name of the container's HNS endpoint (upstream's
//! driver and ours send it; ours is `Contrail-<vmi uuid>`, 45 bytes) or NIC
//! (`Container NIC 1a2b3c4d` on Windows Server 2016): up to 256
//! characters, spaces inside allowed, no control characters, no leading or
//! trailing whitespace. Upstream's agent had no length limit there; the 15
//! bytes are a Linux rule only.

/// The rule of the platform this agent runs on.
pub fn validate(name: &str) -> Result<(), String> {
    #[cfg(windows)]
    {
        windows(name)
    }
    #[cfg(not(windows))]
    {
        linux(name)
    }
}

/// A Linux interface name.
pub fn linux(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "system-name: must be a Linux interface name of 1 to 15 bytes, got {} bytes: {name:?}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("system-name: {name:?} is not an interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | ':' | '\0') || c.is_whitespace())
    {
        return Err(format!(
            "system-name: {c:?} is not allowed in a Linux interface name: {name:?}"
        ));
    }
    Ok(())
}

/// A Windows HNS endpoint / NIC name.
pub fn windows(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > 256 {
        return Err(format!(
            "system-name: must be an HNS endpoint name of 1 to 256 characters, got {n}"
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("system-name: control character {c:?} in {name:?}"));
    }
    if name.trim() != name {
        return Err(format!(
            "system-name: leading or trailing whitespace in {name:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_names() {
        for ok in ["tap93c2c386-6e", "eth0", "a", "veth.1@x", "123456789012345"] {
            assert!(linux(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1234567890123456",
            "tap 1",
            "tap\t1",
            " tap1",
            "tap1\n",
            "a/b",
            "a:b",
            "a\0b",
            ".",
            "..",
            "Contrail-6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b",
        ] {
            assert!(linux(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn windows_names() {
        for ok in [
            "Contrail-6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b",
            "Container NIC 1a2b3c4d",
            "tap93c2c386-6e",
        ] {
            assert!(windows(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(257);
        for bad in ["", " lead", "trail ", "a\tb", "a\0b", "a\nb", long.as_str()] {
            assert!(windows(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_rule_is_the_platforms() {
        let name = "Contrail-6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b";
        assert_eq!(validate(name).is_ok(), cfg!(windows));
    }
}
