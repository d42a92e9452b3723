//! Cache-control policies for MCP tools: which tools' answers may be kept (`immutable`)
//! and which must be read again every time (`no-store`), and what a successful write
//! invalidates.
//!
//! A policy is a list of rules, tried in order; the first whose pattern matches the tool
//! name wins, and a tool no rule matches gets the defaults. Patterns are dot-separated
//! like tool names (`inventory.getStock`): a literal segment matches itself, `*` matches
//! exactly one segment, and `**` matches zero or more. Anything else containing `*` is an
//! invalid pattern, refused when the policy is loaded, so a typo stops start-up instead of
//! quietly leaving a tool cacheable.
//!
//! ```toml
//! default = "no-store"
//!
//! [[rules]]
//! tools = "reference.**"
//! cache = "immutable"
//!
//! [[rules]]
//! tools = "orders.*"
//! invalidates = ["inventory.*", "orders.*", "products.*"]
//! ```

use serde::Deserialize;

/// How long a tool's answer may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CacheDirective {
    /// Read again before every use: the answer may change at any moment.
    #[serde(rename = "no-store")]
    NoStore,
    /// Keep it for the session: it does not change while the session lasts.
    #[serde(rename = "immutable")]
    Immutable,
}

impl CacheDirective {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheDirective::NoStore => "no-store",
            CacheDirective::Immutable => "immutable",
        }
    }
}

/// A policy that cannot be used; start-up stops with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache-control policy: {0}")]
pub struct PolicyError(pub String);

/// A dot-separated glob, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Many,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let bad = |why: &str| PolicyError(format!("pattern {text:?}: {why}"));
        if text.is_empty() {
            return Err(bad("is empty"));
        }
        let segments = text
            .split('.')
            .map(|segment| match segment {
                "" => Err(bad("has an empty segment")),
                "*" => Ok(Segment::One),
                "**" => Ok(Segment::Many),
                s if s.contains('*') => Err(bad(
                    "`*` and `**` must stand alone between dots (`inventory.*`, not `inv*`)",
                )),
                s if s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    Ok(Segment::Literal(s.to_owned()))
                }
                _ => Err(bad("segments are letters, digits, `_` and `-`")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` (dot-separated) matches.
    pub fn matches(&self, name: &str) -> bool {
        let parts: Vec<&str> = name.split('.').collect();
        matches_from(&self.segments, &parts)
    }
}

fn matches_from(pattern: &[Segment], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((Segment::Many, rest)) => {
            (0..=name.len()).any(|skip| matches_from(rest, &name[skip..]))
        }
        Some((Segment::One, rest)) => !name.is_empty() && matches_from(rest, &name[1..]),
        Some((Segment::Literal(l), rest)) => {
            name.first().is_some_and(|n| n == l) && matches_from(rest, &name[1..])
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    tools: String,
    #[serde(default)]
    cache: Option<CacheDirective>,
    #[serde(default)]
    invalidates: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default: Option<CacheDirective>,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

/// One rule: tools matching `tools` get `cache`, and a successful call of one of them
/// invalidates `invalidates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub tools: Pattern,
    pub cache: CacheDirective,
    pub invalidates: Vec<Pattern>,
}

/// The rules in order, then the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    default: CacheDirective,
}

/// The policy used when none is configured. Stock changes at any moment and orders move
/// it: everything is `no-store` but reference data, and every order or stock write
/// invalidates stock, orders and products.
pub const BUILT_IN: &str = r#"
default = "no-store"

[[rules]]
tools = "reference.**"
cache = "immutable"

[[rules]]
tools = "orders.*"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.adjust"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.transfer"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.receiveTransfer"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.setBackorderLimit"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.expectReceipt"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.receiveReceipt"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.cancelReceipt"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.setFairSelling"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.joinWaitlist"
invalidates = ["inventory.*", "orders.*", "products.*"]

[[rules]]
tools = "inventory.leaveWaitlist"
invalidates = ["inventory.*", "orders.*", "products.*"]
"#;

impl Policy {
    /// [`BUILT_IN`].
    pub fn built_in() -> Result<Self, PolicyError> {
        Self::from_toml(BUILT_IN)
    }

    /// Reads a policy from TOML. Unknown keys, unknown directives and invalid patterns are
    /// errors.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError(e.message().to_owned()))?;
        let default = file.default.unwrap_or(CacheDirective::NoStore);
        let rules = file
            .rules
            .into_iter()
            .map(|r| {
                Ok(Rule {
                    tools: Pattern::parse(&r.tools)?,
                    cache: r.cache.unwrap_or(default),
                    invalidates: r
                        .invalidates
                        .unwrap_or_default()
                        .iter()
                        .map(|p| Pattern::parse(p))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, PolicyError>>()?;
        Ok(Self { rules, default })
    }

    fn rule(&self, tool: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.tools.matches(tool))
    }

    /// The directive for `tool`: the first matching rule's, or the default.
    pub fn directive(&self, tool: &str) -> CacheDirective {
        self.rule(tool).map_or(self.default, |r| r.cache)
    }

    /// What a successful call of `tool` invalidates (empty for reads).
    pub fn invalidates(&self, tool: &str) -> &[Pattern] {
        self.rule(tool).map_or(&[], |r| &r.invalidates)
    }

    /// `description` with the tool's directive appended, as the model sees it.
    pub fn describe(&self, tool: &str, description: &str) -> String {
        format!(
            "{} [Cache-Control: {}]",
            description.trim_end(),
            self.directive(tool).as_str()
        )
    }

    /// The text block a successful call of `tool` begins with, if it invalidates
    /// anything: `[System: Cache invalidated for inventory.*, orders.* — caused by
    /// orders.create]`.
    pub fn invalidation_block(&self, tool: &str) -> Option<String> {
        let patterns = self.invalidates(tool);
        if patterns.is_empty() {
            return None;
        }
        let list: Vec<&str> = patterns.iter().map(Pattern::as_str).collect();
        Some(format!(
            "[System: Cache invalidated for {} — caused by {tool}]",
            list.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_star_is_one_segment_and_two_stars_are_any_number() {
        let table = [
            ("inventory.*", "inventory.getStock", true),
            ("inventory.*", "inventory", false),
            ("inventory.*", "inventory.stock.get", false),
            ("inventory.**", "inventory", true),
            ("inventory.**", "inventory.getStock", true),
            ("inventory.**", "inventory.stock.get", true),
            ("**", "anything.at.all", true),
            ("*", "orders", true),
            ("*", "orders.create", false),
            ("*.create", "orders.create", true),
            ("**.create", "a.b.create", true),
            ("**.create", "create", true),
            ("a.**.z", "a.z", true),
            ("a.**.z", "a.b.c.z", true),
            ("a.**.z", "a.b.c", false),
            ("orders.create", "orders.create", true),
            ("orders.create", "orders.createX", false),
            ("orders.create", "Orders.create", false),
        ];
        for (pattern, name, expected) in table {
            let p = Pattern::parse(pattern).unwrap();
            assert_eq!(p.matches(name), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn invalid_globs_are_refused() {
        for bad in [
            "",
            "inventory.",
            ".inventory",
            "inventory..get",
            "inv*",
            "inventory.*Stock",
            "***",
            "inventory.get stock",
            "inventory/get",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn the_first_matching_rule_wins_and_the_rest_get_the_default() {
        let policy = Policy::from_toml(
            r#"
            default = "immutable"
            [[rules]]
            tools = "inventory.getStock"
            cache = "no-store"
            [[rules]]
            tools = "inventory.*"
            cache = "immutable"
            [[rules]]
            tools = "orders.**"
            cache = "no-store"
            invalidates = ["inventory.*", "orders.*"]
            "#,
        )
        .unwrap();
        assert_eq!(
            policy.directive("inventory.getStock"),
            CacheDirective::NoStore
        );
        assert_eq!(
            policy.directive("inventory.list"),
            CacheDirective::Immutable
        );
        assert_eq!(policy.directive("orders.create"), CacheDirective::NoStore);
        assert_eq!(
            policy.directive("reference.pools"),
            CacheDirective::Immutable
        );
        assert_eq!(
            policy.describe("inventory.getStock", "Reads one SKU. "),
            "Reads one SKU. [Cache-Control: no-store]"
        );
        assert_eq!(
            policy.invalidation_block("orders.create").unwrap(),
            "[System: Cache invalidated for inventory.*, orders.* — caused by orders.create]"
        );
        assert_eq!(policy.invalidation_block("inventory.getStock"), None);
    }

    #[test]
    fn a_rule_without_a_directive_takes_the_default() {
        let policy =
            Policy::from_toml("default = \"no-store\"\n[[rules]]\ntools = \"a.*\"\n").unwrap();
        assert_eq!(policy.directive("a.b"), CacheDirective::NoStore);
        let empty = Policy::from_toml("").unwrap();
        assert_eq!(empty.directive("anything"), CacheDirective::NoStore);
    }

    #[test]
    fn bad_policies_stop_start_up_with_a_message() {
        for (text, says) in [
            ("[[rules]]\ntools = \"inv*\"\n", "inv*"),
            (
                "[[rules]]\ntools = \"a\"\ninvalidates = [\"b..c\"]\n",
                "b..c",
            ),
            ("default = \"forever\"\n", "forever"),
            ("[[rules]]\ntool = \"a\"\n", "tool"),
            ("[[rules]]\ncache = \"no-store\"\n", "tools"),
        ] {
            let e = Policy::from_toml(text).unwrap_err();
            assert!(e.0.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_built_in_policy_matches_the_reference_scenario() {
        let policy = Policy::built_in().unwrap();
        assert_eq!(
            policy.directive("inventory.getStock"),
            CacheDirective::NoStore
        );
        assert_eq!(
            policy.directive("reference.pools"),
            CacheDirective::Immutable
        );
        assert_eq!(
            policy.invalidation_block("orders.create").unwrap(),
            "[System: Cache invalidated for inventory.*, orders.*, products.* — caused by orders.create]"
        );
        assert!(policy.invalidation_block("inventory.adjust").is_some());
        assert_eq!(policy.invalidation_block("inventory.list"), None);
    }
}
