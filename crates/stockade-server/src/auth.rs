//! Bearer tokens and the roles they carry.
//!
//! - `admin`: registers SKUs and adjusts stock.
//! - `channel`: reserves, commits and releases; the token names the sales channel
//!   (`web`, `pos`, `marketplace`, `assistant`, ...) its reservations are recorded under.
//! - `reader`: reads, when reads are not public.
//!
//! Every role may read. Tokens are kept only as SHA-256 digests, and a presented token is
//! compared with every digest, without stopping early, so neither the time taken nor its
//! length tells an attacker how close a guess was.
//!
//! With no token configured anywhere, the first start generates an admin and a `web`
//! channel token, writes them to `tokens.toml` in the data directory with mode 0600, and
//! returns them once for printing; later starts read that file and print nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use stockade_domain::{Channel, Principal};
use stockade_wire::{ApiError, Code, ErrorKind};

use crate::config::{AuthConfig, ConfigError};

/// File of generated tokens, inside the data directory.
pub const TOKENS_FILE: &str = "tokens.toml";

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Admin,
    Channel(Channel),
    Reader,
}

/// Who is calling, as its token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// Recorded in event metadata; scopes idempotency keys.
    pub principal: Principal,
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Admin,
    Channel,
}

/// The configured tokens, as digests.
pub struct Tokens {
    entries: Vec<([u8; 32], Caller)>,
    public_reads: bool,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("tokens", &self.entries.len())
            .field("public_reads", &self.public_reads)
            .finish()
    }
}

fn fingerprint(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// Equal in time independent of where the two differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn principal(name: &str) -> Result<Principal, ConfigError> {
    Principal::new(name).map_err(|e| ConfigError(e.to_string()))
}

impl Tokens {
    pub fn from_config(auth: &AuthConfig) -> Result<Self, ConfigError> {
        let mut entries = Vec::new();
        for token in &auth.admin_tokens {
            let caller = Caller {
                role: Role::Admin,
                principal: principal("admin")?,
            };
            entries.push((fingerprint(token), caller));
        }
        for (channel, token) in &auth.channel_tokens {
            let channel = Channel::new(channel.as_str())
                .map_err(|e| ConfigError(format!("auth.channel_tokens: {e}")))?;
            let caller = Caller {
                principal: principal(&format!("channel:{channel}"))?,
                role: Role::Channel(channel),
            };
            entries.push((fingerprint(token), caller));
        }
        for token in &auth.read_tokens {
            let caller = Caller {
                role: Role::Reader,
                principal: principal("reader")?,
            };
            entries.push((fingerprint(token), caller));
        }
        let mut seen: Vec<&[u8; 32]> = Vec::new();
        for (d, _) in &entries {
            if seen.contains(&d) {
                return Err(ConfigError("the same token is configured twice".into()));
            }
            seen.push(d);
        }
        Ok(Self {
            entries,
            public_reads: auth.public_reads,
        })
    }

    pub fn public_reads(&self) -> bool {
        self.public_reads
    }

    /// The caller a token belongs to. Every digest is compared, match or not.
    pub fn find(&self, token: &str) -> Option<&Caller> {
        let presented = fingerprint(token);
        let mut found = None;
        for (d, caller) in &self.entries {
            if same(d, &presented) && found.is_none() {
                found = Some(caller);
            }
        }
        found
    }

    /// Checks a request's credentials against what the endpoint needs. `Ok(None)` is an
    /// anonymous public read.
    pub fn authorize(&self, bearer: Option<&str>, need: Need) -> Result<Option<Caller>, ApiError> {
        self.check(bearer.map(|token| self.find(token)), need)
    }

    /// As `authorize`, with the token already looked up: `None` when no token was
    /// presented, `Some(None)` when one was and it matches nothing.
    pub fn check(
        &self,
        presented: Option<Option<&Caller>>,
        need: Need,
    ) -> Result<Option<Caller>, ApiError> {
        let caller = match presented {
            None if need == Need::Read && self.public_reads => return Ok(None),
            None => {
                return Err(ApiError::new(
                    ErrorKind::Unauthorized,
                    Code::Unauthorized,
                    "this endpoint needs a bearer token (Authorization: Bearer <token>)",
                ));
            }
            Some(found) => found.ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Unauthorized,
                    Code::Unauthorized,
                    "the bearer token is not valid",
                )
            })?,
        };
        let allowed = matches!(
            (need, &caller.role),
            (Need::Read, _) | (Need::Admin, Role::Admin) | (Need::Channel, Role::Channel(_))
        );
        if !allowed {
            let wanted = match need {
                Need::Read => "any",
                Need::Admin => "an admin",
                Need::Channel => "a channel",
            };
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                Code::Forbidden,
                format!("this needs {wanted} token"),
            ));
        }
        Ok(Some(caller.clone()))
    }
}

/// The token part of an `Authorization: Bearer ...` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Tokens generated at the first start, to print once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generated {
    pub admin_tokens: Vec<String>,
    pub channel_tokens: BTreeMap<String, String>,
}

/// When `auth` names no token: loads `tokens.toml` from `data_dir`, or generates it.
/// Returns the tokens only when they were generated now (to be printed once).
pub fn ensure_tokens(
    auth: &mut AuthConfig,
    data_dir: &Path,
) -> Result<Option<Generated>, ConfigError> {
    if !auth.is_empty() {
        return Ok(None);
    }
    let path = data_dir.join(TOKENS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let saved: Generated = toml::from_str(&text)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            auth.admin_tokens = saved.admin_tokens;
            auth.channel_tokens = saved.channel_tokens;
            Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let generated = Generated {
                admin_tokens: vec![random_token("adm")?],
                channel_tokens: BTreeMap::from([("web".to_owned(), random_token("web")?)]),
            };
            write_private(&path, &render(&generated))?;
            auth.admin_tokens = generated.admin_tokens.clone();
            auth.channel_tokens = generated.channel_tokens.clone();
            Ok(Some(generated))
        }
        Err(e) => Err(ConfigError(format!("read {}: {e}", path.display()))),
    }
}

fn render(tokens: &Generated) -> String {
    let mut text = String::from(
        "# Generated by the first `stockade serve`: keep this file private (mode 0600).\n",
    );
    text.push_str(&format!("admin_tokens = {:?}\n", tokens.admin_tokens));
    text.push_str("[channel_tokens]\n");
    for (channel, token) in &tokens.channel_tokens {
        text.push_str(&format!("{channel} = {token:?}\n"));
    }
    text
}

/// Writes `text` to a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), ConfigError> {
    let fail = |e: std::io::Error| ConfigError(format!("write {}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// `stk_<prefix>_` and 32 hex digits of the system's CSPRNG (128 bits).
fn random_token(prefix: &str) -> Result<String, ConfigError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ConfigError("the system random generator failed".into()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("stk_{prefix}_{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(public_reads: bool) -> Tokens {
        Tokens::from_config(&AuthConfig {
            admin_tokens: vec!["admin-token-0000000001".into()],
            channel_tokens: BTreeMap::from([("pos".into(), "pos-token-00000000001".into())]),
            read_tokens: vec!["read-token-0000000001".into()],
            public_reads,
            ..AuthConfig::default()
        })
        .unwrap()
    }

    fn status(r: Result<Option<Caller>, ApiError>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(e) => e.kind.http_status(),
        }
    }

    #[test]
    fn roles_decide_what_a_token_may_do() {
        let t = tokens(false);
        assert_eq!(status(t.authorize(None, Need::Read)), 401);
        assert_eq!(status(t.authorize(Some("nope"), Need::Read)), 401);
        assert_eq!(
            status(t.authorize(Some("read-token-0000000001"), Need::Read)),
            200
        );
        assert_eq!(
            status(t.authorize(Some("read-token-0000000001"), Need::Admin)),
            403
        );
        assert_eq!(
            status(t.authorize(Some("pos-token-00000000001"), Need::Admin)),
            403
        );
        assert_eq!(
            status(t.authorize(Some("admin-token-0000000001"), Need::Channel)),
            403
        );
        let pos = t
            .authorize(Some("pos-token-00000000001"), Need::Channel)
            .unwrap()
            .unwrap();
        assert_eq!(pos.role, Role::Channel(Channel::new("pos").unwrap()));
        assert_eq!(pos.principal.as_str(), "channel:pos");
        // Public reads need nothing, but a bad token is still refused.
        let open = tokens(true);
        assert_eq!(open.authorize(None, Need::Read).unwrap(), None);
        assert_eq!(status(open.authorize(Some("nope"), Need::Read)), 401);
        assert_eq!(status(open.authorize(None, Need::Admin)), 401);
    }

    #[test]
    fn bearer_headers_are_read_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn the_first_start_generates_private_tokens_and_later_starts_reuse_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut auth = AuthConfig::default();
        let generated = ensure_tokens(&mut auth, dir.path()).unwrap().unwrap();
        assert_eq!(auth.admin_tokens, generated.admin_tokens);
        assert!(generated.admin_tokens[0].starts_with("stk_adm_"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKENS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut again = AuthConfig::default();
        assert_eq!(ensure_tokens(&mut again, dir.path()).unwrap(), None);
        assert_eq!(again.channel_tokens, generated.channel_tokens);
        Tokens::from_config(&again).unwrap();
        // Configured tokens win: nothing is read or generated.
        let mut configured = AuthConfig {
            admin_tokens: vec!["x".repeat(20)],
            ..AuthConfig::default()
        };
        assert_eq!(ensure_tokens(&mut configured, dir.path()).unwrap(), None);
        assert_eq!(configured.channel_tokens.len(), 0);
    }
}
