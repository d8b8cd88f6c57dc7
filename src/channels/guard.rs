//! The SSRF guard: "trust the operator, guard the rest".
//!
//! URLs the operator sets (environment or `zaloflow.toml`: `ZALOFLOW_SMS_URL`, the chat and task
//! webhooks, `ZALO_*_BASE`) are trusted wherever they point — loopback, private networks, Fly's
//! `fdaa::/16` and `*.internal` names included; `serve` logs where each points at start.
//!
//! URLs that come from rule files or the admin API (a rule's email links, button and image URLs,
//! a draft sent to `/admin/rules/check`) are checked by [`check_untrusted`]: an internal IP
//! literal or an internal host name (`localhost`, `*.internal`, `*.local`, `*.localhost`) is
//! refused, with where it was written, unless `ZALOFLOW_ALLOW_PRIVATE_URLS=true`. Should the
//! service ever fetch such a URL itself, it must do so with [`webhook_client`]`(_, false)`:
//! - a host name is resolved by [`GuardedResolver`], which drops internal addresses from the
//!   answer and fails when none is left, so what is checked is what is connected to (no DNS
//!   rebinding between a check and the connection). Redirects are never followed.
//!
//! Internal means: loopback, RFC 1918 private, carrier-grade NAT (100.64/10), link-local
//! (169.254/16 — the metadata endpoint — and fe80::/10), unspecified (0.0.0.0/8, ::), unique
//! local (fc00::/7, which holds Fly's fdaa::/16), multicast, broadcast and reserved ranges,
//! benchmarking and documentation ranges, and IPv6 forms that embed an IPv4 address (mapped,
//! compatible, NAT64, 6to4) when that address is internal.

use std::error::Error;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// True when `ip` is not a public unicast address (see the module docs).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT (cloud metadata lives here too)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_internal_v4(v4);
    }
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
}

/// The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d),
/// NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0, 0, 0, 0, 0]
        && (s[5] == 0xffff || (s[5] == 0 && !ip.is_loopback() && !ip.is_unspecified()))
    {
        return Some(tail);
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// A connection the guard refused: the host has only internal addresses.
#[derive(Debug)]
pub struct Blocked {
    pub host: String,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resolves only to internal addresses (SSRF guard; ZALOFLOW_ALLOW_PRIVATE_URLS=true allows them)",
            self.host
        )
    }
}

impl Error for Blocked {}

/// Checks a configured webhook URL: its scheme is http(s) and, unless `allow_private`, its host
/// is not an internal IP literal (host names are checked when resolved). `setting` names the
/// configuration key in the error; the URL itself is never shown (it may hold a secret).
pub fn check_url(setting: &str, url: &str, allow_private: bool) -> anyhow::Result<()> {
    let u = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("{setting} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        anyhow::bail!("{setting} must be an http:// or https:// URL");
    }
    if allow_private {
        return Ok(());
    }
    let Some(host) = u.host_str() else {
        anyhow::bail!("{setting} has no host");
    };
    // The URL parser has already turned every IPv4 spelling (`0x7f.1`, `2130706433`) into
    // dotted form and wrapped IPv6 in brackets.
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    if is_internal(ip) {
        anyhow::bail!(
            "{setting} points to an internal address ({}); set ZALOFLOW_ALLOW_PRIVATE_URLS=true if that is intended",
            crate::channels::redact_url(url)
        );
    }
    Ok(())
}

/// Host names that only ever name internal machines.
fn is_internal_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || [".localhost", ".internal", ".local"]
            .iter()
            .any(|s| h.ends_with(s))
}

/// Checks a URL that came from a rule file or the admin API: http(s), and unless
/// `allow_private` its host is neither an internal IP literal nor an internal name. The error
/// says why in words (the caller adds where the URL was written).
pub fn check_untrusted(url: &str, allow_private: bool) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("`{url}` must be an http:// or https:// URL"));
    }
    if allow_private {
        return Ok(());
    }
    let host = u.host_str().unwrap_or("");
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    if literal.is_some_and(is_internal) || (literal.is_none() && is_internal_name(host)) {
        return Err(format!(
            "`{url}` points to an internal address ({host}); URLs in rules and from the admin API may not reach loopback or private networks (ZALOFLOW_ALLOW_PRIVATE_URLS=true allows them)"
        ));
    }
    Ok(())
}

/// Resolves host names with the system resolver and keeps only public addresses.
#[derive(Debug, Clone, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(Blocked { host }) as Box<dyn Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client of outbound webhooks: like the Zalo client (timeouts, no redirects), plus
/// the guarded resolver unless `allow_private`.
pub fn webhook_client(timeout: std::time::Duration, allow_private: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("zaloflow/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(std::sync::Arc::new(GuardedResolver))
    };
    builder
        .build()
        .expect("a reqwest client with rustls builds")
}

/// True when `e` (or one of its causes) is the guard's refusal.
pub fn is_blocked(e: &(dyn Error + 'static)) -> bool {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<Blocked>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.100.100.200",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} is internal");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "203.113.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn literal_urls_are_checked_host_names_are_left_to_the_resolver() {
        let refused = [
            "http://127.0.0.1:8080/admin",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/x",
            "http://[fd00::1]/x",
            "http://0.0.0.0/",
            "http://10.0.0.5/sms",
            "http://2130706433/", // 127.0.0.1 as one number
            "http://0x7f.1/",
        ];
        for url in refused {
            let e = check_url("ZALOFLOW_SMS_URL", url, false).unwrap_err();
            assert!(
                e.to_string().contains("ZALOFLOW_ALLOW_PRIVATE_URLS"),
                "{url}: {e}"
            );
            check_url("ZALOFLOW_SMS_URL", url, true).unwrap();
        }
        check_url("X", "https://hooks.slack.com/services/T/B/C", false).unwrap();
        check_url("X", "http://localhost:9/", false).unwrap(); // the resolver refuses it
        assert!(check_url("X", "file:///etc/passwd", true).is_err());
        assert!(check_url("X", "not a url", true).is_err());
    }

    #[test]
    fn untrusted_urls_may_not_name_internal_hosts() {
        for url in [
            "http://127.0.0.1:8080/admin",
            "http://[fdaa:0:1::3]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost/x",
            "http://db.internal:5432/",
            "http://printer.local/",
            "http://10.0.0.5/",
        ] {
            let e = check_untrusted(url, false).unwrap_err();
            assert!(e.contains("ZALOFLOW_ALLOW_PRIVATE_URLS"), "{url}: {e}");
            check_untrusted(url, true).unwrap();
        }
        check_untrusted("https://shop.example.vn/uu-dai?x=1", false).unwrap();
        assert!(check_untrusted("javascript:alert(1)", true).is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_internal_addresses() {
        let r = GuardedResolver;
        let e = match r.resolve("localhost".parse::<Name>().unwrap()).await {
            Err(e) => e,
            Ok(_) => panic!("localhost must be refused"),
        };
        assert!(is_blocked(&*e), "{e}");
    }
}
