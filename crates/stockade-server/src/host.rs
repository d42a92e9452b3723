//! DNS-rebinding protection for every route. A server on a developer's loopback with
//! public reads can be reached by a web page in a browser through a name the attacker
//! controls that resolves to 127.0.0.1; the browser then sends the attacker's name as
//! `Host`, and its page's origin as `Origin`. When the lists are set (by default, when
//! the server listens on loopback), a request whose `Host` or `Origin` is not on them is
//! refused with 403 before any handler runs.
//!
//! Both headers are parsed strictly, as RFC 9110 and RFC 6454 define them: a `Host` is a
//! name or IP literal with an optional port and nothing else, so `evil.com@127.0.0.1` or
//! `127.0.0.1/x` is malformed, not "127.0.0.1".

/// The allowed `Host` names and `Origin` patterns; an empty list checks nothing.
#[derive(Debug, Clone, Default)]
pub struct HostCheck {
    hosts: Vec<String>,
    /// `scheme://host:port`, where the port may be `*`.
    origins: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Host,
    Origin,
}

impl HostCheck {
    pub fn new(hosts: Vec<String>, origins: Vec<String>) -> Self {
        Self {
            hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            origins: origins
                .into_iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Checks a request's `Host` (one value; absent only for HTTP/1.0) and `Origin`.
    pub fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), Refusal> {
        if !self.hosts.is_empty() {
            let name = host.and_then(|h| authority(h).map(|(name, _)| name));
            if !name.is_some_and(|n| self.hosts.iter().any(|h| strip_brackets(h) == n)) {
                return Err(Refusal::Host);
            }
        }
        if let (false, Some(origin)) = (self.origins.is_empty(), origin) {
            let parsed = parse_origin(origin).ok_or(Refusal::Origin)?;
            if !self.origins.iter().any(|pattern| matches(pattern, &parsed)) {
                return Err(Refusal::Origin);
            }
        }
        Ok(())
    }
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// `host[:port]` → (lowercased host without brackets, port), or `None` if malformed.
fn authority(value: &str) -> Option<(String, Option<u16>)> {
    let value = value.trim();
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        // An IPv6 literal.
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (inside.to_ascii_lowercase(), port)
    } else {
        let (host, port) = match value.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        };
        let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if host.is_empty() || host.len() > 253 || !host.chars().all(name_char) {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// An origin: scheme, host, port (explicit, or the scheme's default).
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn parse_origin(value: &str) -> Option<Origin> {
    let (scheme, rest) = value.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = authority(rest)?;
    Some(Origin {
        scheme,
        host,
        port: port.unwrap_or(default),
    })
}

/// `pattern` is `scheme://host[:port]` with `*` allowed as the port.
fn matches(pattern: &str, origin: &Origin) -> bool {
    let (prefix, any_port) = match pattern.strip_suffix(":*") {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let Some(wanted) = parse_origin(prefix) else {
        return false;
    };
    wanted.scheme == origin.scheme
        && wanted.host == origin.host
        && (any_port || wanted.port == origin.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> HostCheck {
        HostCheck::new(
            vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            vec![
                "http://localhost:*".into(),
                "http://127.0.0.1:*".into(),
                "http://[::1]:*".into(),
            ],
        )
    }

    #[test]
    fn loopback_names_pass_with_or_without_a_port() {
        let check = loopback();
        for host in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:9"] {
            assert_eq!(check.check(Some(host), None), Ok(()), "{host}");
        }
        assert_eq!(
            check.check(Some("127.0.0.1:1"), Some("http://localhost:5173")),
            Ok(())
        );
    }

    #[test]
    fn other_names_and_malformed_hosts_are_refused() {
        let check = loopback();
        for host in [
            "evil.com",
            "evil.com@127.0.0.1",
            "127.0.0.1/x",
            "127.0.0.1:80:80",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "[::1",
            "",
            "127.0.0.1 evil",
        ] {
            assert_eq!(check.check(Some(host), None), Err(Refusal::Host), "{host}");
        }
        assert_eq!(check.check(None, None), Err(Refusal::Host));
        for origin in [
            "http://evil.com",
            "null",
            "https://127.0.0.1:1",
            "http://127.0.0.1@evil.com",
            "file://",
        ] {
            assert_eq!(
                check.check(Some("127.0.0.1"), Some(origin)),
                Err(Refusal::Origin),
                "{origin}"
            );
        }
    }

    #[test]
    fn empty_lists_check_nothing() {
        let open = HostCheck::default();
        assert_eq!(open.check(Some("anything:1"), Some("http://x")), Ok(()));
        assert_eq!(open.check(None, None), Ok(()));
    }
}
