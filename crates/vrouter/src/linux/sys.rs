//! Thin, checked wrappers over the libc calls the Linux ports use.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// Kernel ABI constants (include/uapi/linux/if_packet.h), spelled out here
// because not every libc release exports them at the crate root.
pub const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
pub const PACKET_MR_PROMISC: libc::c_ushort = 1;
pub const PACKET_STATISTICS: libc::c_int = 6;
pub const PACKET_AUXDATA: libc::c_int = 8;
/// `tpacket_auxdata.tp_status` bits: the frame had a VLAN tag the device
/// (or veth's offload) took out of the data, and its TPID.
pub const TP_STATUS_VLAN_VALID: u32 = 0x10;
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;
pub const PACKET_VNET_HDR: libc::c_int = 15;
pub const PACKET_QDISC_BYPASS: libc::c_int = 20;
pub const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

#[repr(C)]
pub struct PacketMreq {
    pub mr_ifindex: libc::c_int,
    pub mr_type: libc::c_ushort,
    pub mr_alen: libc::c_ushort,
    pub mr_address: [u8; 8],
}

#[repr(C)]
#[derive(Default)]
pub struct TpacketStats {
    pub tp_packets: libc::c_uint,
    pub tp_drops: libc::c_uint,
}

pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Take ownership of a descriptor a syscall just returned.
pub fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of the size we pass.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

pub fn getsockopt<T: Default>(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a live `T` and `len` its size.
    cvt(unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut T).cast(), &mut len) })?;
    Ok(v)
}

pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {name}"),
        ))
    } else {
        Ok(idx)
    }
}

/// An `ifreq` carrying `name` (at most IFNAMSIZ-1 bytes).
pub fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all zeroes is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= ifr.ifr_name.len() || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

pub fn ifreq_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Set IFF_UP on `name` (in the caller's network namespace).
pub fn set_up(name: &str) -> io::Result<()> {
    let s =
        owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    let mut ifr = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `ifr`, which is valid.
    unsafe {
        cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr))?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr))?;
    }
    Ok(())
}

/// The MAC address of `name` (SIOCGIFHWADDR: unlike sysfs, this follows
/// the calling thread's network namespace).
pub fn mac_of(name: &str) -> io::Result<[u8; 6]> {
    // SAFETY: plain socket(2).
    let s =
        owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    let mut ifr = ifreq(name)?;
    // SAFETY: SIOCGIFHWADDR writes into `ifr`, which is valid; the union
    // member read afterwards is the one the kernel filled.
    let data = unsafe {
        cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr))?;
        ifr.ifr_ifru.ifru_hwaddr.sa_data
    };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data.iter()) {
        *m = *d as u8;
    }
    Ok(mac)
}

/// Attach a classic BPF program that accepts nothing: the socket still
/// claims its port/protocol (so the kernel sends no ICMP unreachable) but
/// queues no data.
pub fn attach_drop_all(fd: &impl AsRawFd) -> io::Result<()> {
    let mut insn = [libc::sock_filter {
        // BPF_RET | BPF_K, k = 0: keep 0 bytes.
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: insn.as_mut_ptr(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// Keep the host stack off a VM-facing interface: never answer ARP for
/// host addresses on it (`arp_ignore=8`) and no IPv6 on it (no link-local
/// address, DAD, router solicitations or MLD towards the VM). The kernel
/// module vRouter steals such frames before the stack sees them; with
/// AF_PACKET the stack sees them too, hence this. Per the caller's network
/// namespace (procfs `net` follows the thread).
pub fn isolate_host_stack(name: &str) -> io::Result<()> {
    if name.contains('/') || name.contains("..") || name.is_empty() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{name}/arp_ignore"), "8")?;
    match std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1") {
        // No IPv6 in this kernel: nothing to disable.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Enter the network namespace `/run/netns/NAME` (as `ip netns` names it)
/// for the calling thread only. Threads it spawns afterwards, and sockets
/// it opens, belong to that namespace.
pub fn enter_netns(name: &str) -> io::Result<()> {
    if name.contains('/') || name.is_empty() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let f = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns on a namespace file descriptor we own.
    cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }).map(|_| ())
}

/// The MTU of `name` (SIOCGIFMTU, in the caller's network namespace).
pub fn mtu_of(name: &str) -> io::Result<u16> {
    // SAFETY: plain socket(2).
    let s =
        owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    let mut ifr = ifreq(name)?;
    // SAFETY: SIOCGIFMTU writes the MTU into `ifr`, which is valid; the
    // union member read is the one the kernel filled.
    let mtu = unsafe {
        cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr))?;
        ifr.ifr_ifru.ifru_mtu
    };
    Ok(u16::try_from(mtu.max(0)).unwrap_or(u16::MAX))
}

/// What a device accepts on transmit, from its active features: partial
/// checksums, and TCP (v4, v6) and UDP segmentation offload. A GSO frame of
/// a kind the device lacks is dropped (`ENOBUFS`) by a packet socket that
/// bypasses the qdisc layer, instead of being segmented by the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxFeatures {
    pub csum: bool,
    pub tso4: bool,
    pub tso6: bool,
    pub uso: bool,
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// One `SIOCETHTOOL` call with `buf` as the command structure.
fn ethtool(name: &str, buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: plain socket(2).
    let s =
        owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    let mut ifr = ifreq(name)?;
    ifr.ifr_ifru.ifru_data = buf.as_mut_ptr().cast();
    // SAFETY: the command structure is `buf`, live and sized for what the
    // command writes (the caller sized it from the counts the kernel gave).
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), SIOCETHTOOL, &mut ifr) }).map(|_| ())
}

const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;

/// The name of `name`'s driver (ethtool's GDRVINFO), e.g. `veth`, `tun`.
pub fn driver_of(name: &str) -> io::Result<String> {
    // struct ethtool_drvinfo { u32 cmd; char driver[32]; char version[32];
    // char fw_version[32], bus_info[32], erom_version[32], reserved2[12];
    // u32 n_priv_flags, n_stats, testinfo_len, eedump_len, regdump_len; }
    let mut info = [0u8; 4 + 32 * 5 + 12 + 4 * 5];
    info[0..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    ethtool(name, &mut info)?;
    let d = &info[4..36];
    let end = d.iter().position(|c| *c == 0).unwrap_or(d.len());
    Ok(String::from_utf8_lossy(&d[..end]).into_owned())
}

/// The index of the device at the other end of the veth `name`, from its
/// ethtool statistic `peer_ifindex`; `None` if `name` is not a veth.
fn veth_peer_index(name: &str) -> io::Result<Option<u32>> {
    if driver_of(name)? != "veth" {
        return Ok(None);
    }
    let names = string_set(name, ETH_SS_STATS)?;
    let Some(at) = names.iter().position(|n| n == b"peer_ifindex") else {
        return Ok(None);
    };
    // struct ethtool_stats { u32 cmd, n_stats; u64 data[]; }
    let mut st = vec![0u8; 8 + names.len() * 8];
    st[0..4].copy_from_slice(&ETHTOOL_GSTATS.to_ne_bytes());
    st[4..8].copy_from_slice(&(names.len() as u32).to_ne_bytes());
    ethtool(name, &mut st)?;
    let v = st
        .get(8 + at * 8..16 + at * 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_ne_bytes)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short ethtool stats"))?;
    Ok(u32::try_from(v).ok())
}

/// The name of the device numbered `index` in this namespace.
fn name_of(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success `buf` holds a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Whether `name` is a veth whose peer lives in another network namespace
/// (a container's end): only then can a TC program hand a frame straight
/// to the peer's ingress (`bpf_redirect_peer` drops frames for a peer in
/// the same namespace). Asked through ioctls, which answer for the
/// caller's namespace (sysfs answers for its mounter's). Any doubt: "no".
pub fn veth_peer_elsewhere(name: &str) -> bool {
    let (Ok(Some(peer)), Ok(me)) = (veth_peer_index(name), ifindex(name)) else {
        return false;
    };
    match name_of(peer) {
        // No device of that number here: the peer is elsewhere.
        None => true,
        // One here pointing back at us is the peer; one that does not is
        // a namesake by number, and the peer is elsewhere.
        Some(n) => !matches!(veth_peer_index(&n), Ok(Some(back)) if back == me),
    }
}

fn ne32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// The names of `name`'s features, by bit (ethtool's ETH_SS_FEATURES).
fn feature_names(name: &str) -> io::Result<Vec<Vec<u8>>> {
    string_set(name, ETH_SS_FEATURES)
}

/// The strings of one of `name`'s ethtool string sets, in order.
fn string_set(name: &str, set: u32) -> io::Result<Vec<Vec<u8>>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "short ethtool answer");
    // struct ethtool_sset_info { u32 cmd, reserved; u64 sset_mask; u32 data[1]; }
    let mut info = [0u8; 4 + 4 + 8 + 4];
    info[0..4].copy_from_slice(&ETHTOOL_GSSET_INFO.to_ne_bytes());
    info[8..16].copy_from_slice(&(1u64 << set).to_ne_bytes());
    ethtool(name, &mut info)?;
    let count = ne32(&info, 16).ok_or_else(bad)? as usize;
    if count == 0 || count > 4096 {
        return Err(bad());
    }
    // struct ethtool_gstrings { u32 cmd, string_set, len; u8 data[]; }
    let mut strings = vec![0u8; 12 + count * ETH_GSTRING_LEN];
    strings[0..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
    strings[4..8].copy_from_slice(&set.to_ne_bytes());
    strings[8..12].copy_from_slice(&(count as u32).to_ne_bytes());
    ethtool(name, &mut strings)?;
    Ok((0..count)
        .map(|bit| {
            let s = strings
                .get(12 + bit * ETH_GSTRING_LEN..12 + (bit + 1) * ETH_GSTRING_LEN)
                .unwrap_or(&[]);
            let end = s.iter().position(|c| *c == 0).unwrap_or(s.len());
            s.get(..end).unwrap_or(&[]).to_vec()
        })
        .collect())
}

/// The feature names of `name` and, for each, whether it is active now
/// (ethtool's GSTRINGS and GFEATURES).
fn active_features(name: &str) -> io::Result<(Vec<Vec<u8>>, Vec<bool>)> {
    let names = feature_names(name)?;
    // struct ethtool_gfeatures { u32 cmd, size; struct { u32 available,
    // requested, active, never_changed; } features[]; }
    let blocks = names.len().div_ceil(32);
    let mut feats = vec![0u8; 8 + blocks * 16];
    feats[0..4].copy_from_slice(&ETHTOOL_GFEATURES.to_ne_bytes());
    feats[4..8].copy_from_slice(&(blocks as u32).to_ne_bytes());
    ethtool(name, &mut feats)?;
    let active = (0..names.len())
        .map(|bit| {
            ne32(&feats, 8 + (bit / 32) * 16 + 8).is_some_and(|w| w & (1 << (bit % 32)) != 0)
        })
        .collect();
    Ok((names, active))
}

/// Turn the features `names` (ethtool names, e.g. `tx-gre-segmentation`)
/// on or off on `name`, as `ethtool -K name X on|off` does, and return
/// the names that were active and are now asked off (or the reverse):
/// what to set back later. Names the device does not have are ignored.
pub fn features_set(name: &str, names: &[&str], on: bool) -> io::Result<Vec<String>> {
    let (all, active) = active_features(name)?;
    let blocks = all.len().div_ceil(32);
    // struct ethtool_sfeatures { u32 cmd, size; struct { u32 valid,
    // requested; } features[]; }
    let mut req = vec![0u8; 8 + blocks * 8];
    req[0..4].copy_from_slice(&ETHTOOL_SFEATURES.to_ne_bytes());
    req[4..8].copy_from_slice(&(blocks as u32).to_ne_bytes());
    let mut changed = Vec::new();
    for (bit, n) in all.iter().enumerate() {
        if !names.iter().any(|o| o.as_bytes() == n.as_slice()) {
            continue;
        }
        let at = 8 + (bit / 32) * 8;
        let valid = ne32(&req, at).unwrap_or(0) | (1 << (bit % 32));
        if let Some(d) = req.get_mut(at..at + 4) {
            d.copy_from_slice(&valid.to_ne_bytes());
        }
        if on {
            let r = ne32(&req, at + 4).unwrap_or(0) | (1 << (bit % 32));
            if let Some(d) = req.get_mut(at + 4..at + 8) {
                d.copy_from_slice(&r.to_ne_bytes());
            }
        }
        if active.get(bit).copied().unwrap_or(false) != on {
            changed.push(String::from_utf8_lossy(n).into_owned());
        }
    }
    if changed.is_empty() {
        return Ok(changed);
    }
    ethtool(name, &mut req)?;
    Ok(changed)
}

/// The transmit offloads `name` has on now (ethtool's feature strings and
/// active bits: `tx-checksum-*`, `tx-tcp-segmentation`,
/// `tx-tcp6-segmentation`, `tx-udp-segmentation`).
pub fn tx_features(name: &str) -> io::Result<TxFeatures> {
    let (names, active) = active_features(name)?;
    let mut f = TxFeatures::default();
    for (n, &on) in names.iter().zip(&active) {
        match n.as_slice() {
            b"tx-checksum-ipv4" | b"tx-checksum-ip-generic" | b"tx-checksum-ipv6" => f.csum |= on,
            b"tx-tcp-segmentation" => f.tso4 = on,
            b"tx-tcp6-segmentation" => f.tso6 = on,
            b"tx-udp-segmentation" => f.uso = on,
            _ => {}
        }
    }
    Ok(f)
}
