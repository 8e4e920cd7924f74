//! The cell's settings, parsed at the edge (the CLI builds them from flags
//! and the environment; `serve` hands each runtime its own uid).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `--isolation`: whether gateways run in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A cell per instance (the default).
    Cell,
    /// The gateway runs as this agent's own user, with its access: only for
    /// one trusted user on their own machine, chosen explicitly.
    None,
}

impl Isolation {
    /// Parses `cell` or `none`.
    pub fn parse(input: &str) -> Result<Isolation, String> {
        match input.trim().to_ascii_lowercase().as_str() {
            "" | "cell" => Ok(Isolation::Cell),
            "none" => Ok(Isolation::None),
            other => Err(format!("isolation '{other}' is not one of cell, none")),
        }
    }

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Cell => "cell",
            Isolation::None => "none",
        }
    }
}

/// `--cell-egress`: what a cell may reach beyond itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// Public addresses, through NAT (the default); private ranges and the
    /// host are unreachable.
    Public,
    /// Nothing but the allowed endpoints.
    None,
}

impl Egress {
    /// Parses `public` or `none`.
    pub fn parse(input: &str) -> Result<Egress, String> {
        match input.trim().to_ascii_lowercase().as_str() {
            "" | "public" => Ok(Egress::Public),
            "none" => Ok(Egress::None),
            other => Err(format!("cell egress '{other}' is not one of public, none")),
        }
    }

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Egress::Public => "public",
            Egress::None => "none",
        }
    }
}

/// Everything one cell needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSettings {
    /// Its uid and gid.
    pub uid: u32,
    /// A name for its cgroup (the instance id).
    pub name: String,
    /// Memory limit, bytes.
    pub memory_bytes: u64,
    /// CPU limit, in CPUs.
    pub cpus: f64,
    /// Process limit.
    pub pids: u32,
    /// Open files per process.
    pub open_files: u32,
    /// Disk quota of the state directory and home, bytes.
    pub disk_quota_bytes: u64,
    /// Egress.
    pub egress: Egress,
    /// Host endpoints the cell may reach, at the same address inside.
    pub allow: Vec<SocketAddr>,
}

/// The lowest uid a cell may have: below it live the host's own users.
pub const MIN_CELL_UID: u32 = 100_000;

impl CellSettings {
    /// Defaults for a cell with this uid and name: 2 GiB, 2 CPUs, 512
    /// processes, 8192 open files, 10 GiB of disk, public egress.
    pub fn new(uid: u32, name: &str) -> Result<CellSettings, String> {
        let settings = CellSettings {
            uid,
            name: name.to_owned(),
            memory_bytes: 2 << 30,
            cpus: 2.0,
            pids: 512,
            open_files: 8192,
            disk_quota_bytes: 10 << 30,
            egress: Egress::Public,
            allow: Vec::new(),
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the values; every message says which setting is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.uid < MIN_CELL_UID || self.uid == u32::MAX {
            return Err(format!(
                "the cell uid {} is below {MIN_CELL_UID}, where the host's own users live",
                self.uid
            ));
        }
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err("the cell's name must be 1-64 letters, digits, '-' or '_'".into());
        }
        if self.memory_bytes < (256 << 20) {
            return Err("the cell memory limit must be at least 256 MiB".into());
        }
        if !(self.cpus.is_finite() && self.cpus >= 0.1 && self.cpus <= 1024.0) {
            return Err("the cell CPU limit must be between 0.1 and 1024".into());
        }
        if self.pids < 32 {
            return Err("the cell process limit must be at least 32".into());
        }
        if self.open_files < 256 {
            return Err("the cell open-file limit must be at least 256".into());
        }
        if self.disk_quota_bytes < (64 << 20) {
            return Err("the cell disk quota must be at least 64 MiB".into());
        }
        Ok(())
    }
}

/// Parses `CLAWPLANE_CELL_ALLOW`: comma-separated `host:port`, where host is
/// an IPv4 address or `localhost` (127.0.0.1).
pub fn parse_allow(input: &str) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for item in input.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || {
            format!("CLAWPLANE_CELL_ALLOW: '{item}' is not host:port (an IPv4 address or localhost, and a port)")
        };
        let (host, port) = item.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let ip: Ipv4Addr = if host.eq_ignore_ascii_case("localhost") {
            Ipv4Addr::LOCALHOST
        } else {
            host.parse().map_err(|_| bad())?
        };
        if port == 0 || ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return Err(bad());
        }
        let addr = SocketAddr::new(IpAddr::V4(ip), port);
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}

/// Parses a size such as `2GiB`, `512MiB`, `1.5G`, or a number of bytes.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{input}' is not a size such as 2GiB or 512MiB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "'{input}' has an unknown unit (use B, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    let bytes = number * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("'{input}' is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_are_parsed_and_checked() {
        let list = parse_allow(" 127.0.0.1:8081, localhost:9000,127.0.0.1:8081").unwrap();
        assert_eq!(
            list,
            vec![
                "127.0.0.1:8081".parse().unwrap(),
                "127.0.0.1:9000".parse().unwrap()
            ]
        );
        for bad in [
            "127.0.0.1",
            "example.com:80",
            "0.0.0.0:80",
            "1.2.3.4:0",
            "[::1]:80",
        ] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
        assert!(parse_allow("").unwrap().is_empty());
    }

    #[test]
    fn sizes_are_parsed() {
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("512 MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("2 parsecs").is_err());
    }

    #[test]
    fn settings_refuse_host_uids_and_tiny_limits() {
        assert!(CellSettings::new(1000, "a").is_err());
        assert!(CellSettings::new(0, "a").is_err());
        assert!(CellSettings::new(MIN_CELL_UID, "../x").is_err());
        let mut s = CellSettings::new(MIN_CELL_UID + 1, "inst-1").unwrap();
        s.memory_bytes = 1 << 20;
        assert!(s.validate().is_err());
        assert_eq!(Isolation::parse("none").unwrap(), Isolation::None);
        assert!(Isolation::parse("docker").is_err());
        assert_eq!(Egress::parse("").unwrap(), Egress::Public);
    }
}
