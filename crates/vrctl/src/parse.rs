//! Parsers of command-line values (used as clap value parsers, so a bad
//! value is reported with the option it was given to).

use std::net::IpAddr;

/// `aa:bb:cc:dd:ee:ff` (or with `-`), hex digits, one or two per byte.
pub fn mac(s: &str) -> Result<[u8; 6], String> {
    let err =
        || format!("invalid MAC address '{s}': expected six hex bytes such as 02:00:5e:00:01:00");
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(err());
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return Err(err());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| err())?;
    }
    Ok(m)
}

/// A Windows GUID `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (braces
/// optional) as the 16 bytes of `vifr_if_guid`: the `GUID` struct in
/// memory (first three groups little-endian), as the Windows driver reads
/// it.
pub fn guid(s: &str) -> Result<[u8; 16], String> {
    let err = || format!("invalid GUID '{s}': expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
    let t = s.trim_start_matches('{').trim_end_matches('}');
    let groups: Vec<&str> = t.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if groups.len() != 5 || groups.iter().zip(lens).any(|(g, l)| g.len() != l) {
        return Err(err());
    }
    let hex = |g: &str| -> Result<Vec<u8>, String> {
        (0..g.len())
            .step_by(2)
            .map(|i| {
                g.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
                    .ok_or_else(err)
            })
            .collect()
    };
    let mut out = Vec::with_capacity(16);
    for (i, g) in groups.iter().enumerate() {
        let mut b = hex(g)?;
        if i < 3 {
            b.reverse();
        }
        out.extend(b);
    }
    out.try_into().map_err(|_| err())
}

/// `ADDR/PLEN`, or `ADDR` alone (a host route: /32 or /128).
pub fn prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("invalid prefix '{s}': '{a}' is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let plen = match l {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("invalid prefix '{s}': length must be 0 to {max}"))?,
    };
    Ok((addr, plen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(mac("02:00:5e:00:01:0a"), Ok([2, 0, 0x5e, 0, 1, 10]));
        assert_eq!(mac("2-0-5E-0-1-A"), Ok([2, 0, 0x5e, 0, 1, 10]));
        for bad in [
            "",
            "02:00:5e:00:01",
            "02:00:5e:00:01:00:00",
            "zz:00:00:00:00:00",
            "002:0:0:0:0:0",
        ] {
            let e = mac(bad).unwrap_err();
            assert!(e.contains("invalid MAC address"), "{e}");
        }
    }

    #[test]
    fn guids() {
        let g = guid("{00112233-4455-6677-8899-aabbccddeeff}").unwrap();
        assert_eq!(
            g,
            [
                0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
        assert!(guid("00112233-4455-6677-8899-aabbccddeef").is_err());
        assert!(guid("0011223x-4455-6677-8899-aabbccddeeff").is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix("10.1.0.0/16"), Ok(("10.1.0.0".parse().unwrap(), 16)));
        assert_eq!(prefix("10.1.2.3"), Ok(("10.1.2.3".parse().unwrap(), 32)));
        assert_eq!(prefix("fd00::1"), Ok(("fd00::1".parse().unwrap(), 128)));
        assert_eq!(prefix("fd00::/64"), Ok(("fd00::".parse().unwrap(), 64)));
        assert!(prefix("10.1.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(prefix("fd00::/129").unwrap_err().contains("0 to 128"));
        assert!(prefix("host/24").unwrap_err().contains("not an IPv4"));
    }
}
