//! Scope grammar and the scopes connapp knows per platform.
//!
//! Zoom's granular grammar: `<product>:<action>:<resource>[:admin|:master]`,
//! product and resource in lower snake case, action one of read, write,
//! update, delete. Any other platform gets RFC 6749's scope-token grammar.

/// The level a Zoom scope acts at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeLevel {
    /// No suffix: acts on the authorizing user.
    User,
    /// `:admin`: acts on the whole account; needs an admin-managed app.
    Admin,
    /// `:master`: master account; only master account owners can grant.
    Master,
}

/// Why a scope string does not follow the grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeProblem {
    /// Empty string.
    Empty,
    /// Contains whitespace or characters outside the grammar.
    BadCharacters,
    /// Upper-case letters (Zoom scopes are lower case).
    UpperCase,
    /// A classic (pre-granular) scope such as `user:read:admin`.
    Classic,
    /// Wrong number of parts or a bad part.
    Shape(String),
}

/// A parsed Zoom granular scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoomScope<'a> {
    /// e.g. `report`.
    pub product: &'a str,
    /// read, write, update or delete.
    pub action: &'a str,
    /// e.g. `user`, `list_zoomrooms`.
    pub resource: &'a str,
    /// User, admin or master.
    pub level: ScopeLevel,
}

fn is_snake(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z')) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

const ACTIONS: [&str; 4] = ["read", "write", "update", "delete"];

/// Classic Zoom scopes still seen on older apps.
pub const ZOOM_CLASSIC_SCOPES: &[&str] = &[
    "user:read:admin",
    "user:read",
    "user:write:admin",
    "report:read:admin",
    "dashboard_meetings:read:admin",
    "dashboard_zr:read:admin",
    "meeting:read:admin",
    "meeting:read",
    "imchat:bot",
];

/// Parses a Zoom granular scope.
pub fn parse_zoom_scope(s: &str) -> Result<ZoomScope<'_>, ScopeProblem> {
    if s.is_empty() {
        return Err(ScopeProblem::Empty);
    }
    if s.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ScopeProblem::UpperCase);
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
    {
        return Err(ScopeProblem::BadCharacters);
    }
    if ZOOM_CLASSIC_SCOPES.contains(&s) {
        return Err(ScopeProblem::Classic);
    }
    let parts: Vec<&str> = s.split(':').collect();
    let (product, action, resource, level) = match parts.as_slice() {
        [p, a, r] => (*p, *a, *r, ScopeLevel::User),
        [p, a, r, "admin"] => (*p, *a, *r, ScopeLevel::Admin),
        [p, a, r, "master"] => (*p, *a, *r, ScopeLevel::Master),
        [_, _, _, other] => {
            return Err(ScopeProblem::Shape(format!(
                "the fourth part must be `admin` or `master`, not `{other}`"
            )));
        }
        _ => {
            return Err(ScopeProblem::Shape(format!(
                "expected 3 or 4 parts separated by `:`, found {}",
                parts.len()
            )));
        }
    };
    if !is_snake(product) {
        return Err(ScopeProblem::Shape(format!(
            "the product `{product}` must be lower snake case"
        )));
    }
    if !ACTIONS.contains(&action) {
        return Err(ScopeProblem::Shape(format!(
            "the action `{action}` must be one of read, write, update, delete"
        )));
    }
    if !is_snake(resource) {
        return Err(ScopeProblem::Shape(format!(
            "the resource `{resource}` must be lower snake case"
        )));
    }
    if resource == "admin" || resource == "master" {
        return Err(ScopeProblem::Classic);
    }
    Ok(ZoomScope {
        product,
        action,
        resource,
        level,
    })
}

/// Checks RFC 6749 §3.3 scope-token grammar: `1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_rfc6749_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Zoom granular scopes connapp knows. A scope not listed is a warning, not an
/// error: Zoom adds scopes faster than any list.
pub const ZOOM_KNOWN_SCOPES: &[&str] = &[
    // The six DEX scopes.
    "report:read:user:admin",
    "dashboard:read:list_meeting_participants_qos:admin",
    "dashboard:read:meeting_participant_qos:admin",
    "dashboard:read:list_zoomrooms:admin",
    "dashboard:read:issues_zoomroom:admin",
    "user:read:user:admin",
    // Their :master and user-level alternatives.
    "report:read:user:master",
    "dashboard:read:list_meeting_participants_qos:master",
    "dashboard:read:meeting_participant_qos:master",
    "dashboard:read:list_zoomrooms:master",
    "dashboard:read:issues_zoomroom:master",
    "user:read:user:master",
    "user:read:user",
    // Commonly used neighbours.
    "dashboard:read:zoomroom:admin",
    "dashboard:read:list_meetings:admin",
    "dashboard:read:meeting:admin",
    "dashboard:read:list_meeting_participants:admin",
    "user:read:list_users:admin",
    "user:read:email:admin",
    "user:read:email",
    "user:read:settings:admin",
    "meeting:read:meeting",
    "meeting:read:meeting:admin",
    "meeting:read:list_meetings",
    "meeting:read:list_meetings:admin",
    "meeting:write:meeting",
    "meeting:write:meeting:admin",
    "report:read:list_meeting_participants:admin",
    "report:read:meeting:admin",
    "report:read:list_users:admin",
    "zoom_rooms:read:list_rooms:admin",
    "zoom_rooms:read:room:admin",
    // Marketplace management (the developer account's management app).
    "marketplace:read:app",
    "marketplace:read:app:admin",
    "marketplace:write:app",
    "marketplace:write:app:admin",
    "marketplace:read:list_apps",
    "marketplace:read:list_apps:admin",
    "marketplace:update:app",
    "marketplace:update:app:admin",
    "marketplace:update:client_secret",
    "marketplace:update:client_secret:admin",
    "marketplace:delete:app",
    "marketplace:delete:app:admin",
];

/// The closest known scope to `s`, if it is close enough to be a likely typo.
pub fn suggest<'a>(s: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(s, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 8))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granular_scopes_parse() {
        let s = parse_zoom_scope("dashboard:read:list_zoomrooms:admin").expect("valid");
        assert_eq!(s.product, "dashboard");
        assert_eq!(s.resource, "list_zoomrooms");
        assert_eq!(s.level, ScopeLevel::Admin);
        assert_eq!(
            parse_zoom_scope("user:read:user").expect("valid").level,
            ScopeLevel::User
        );
        assert_eq!(
            parse_zoom_scope("user:read:user:master").expect("valid").level,
            ScopeLevel::Master
        );
    }

    #[test]
    fn bad_scopes_are_named() {
        assert_eq!(parse_zoom_scope(""), Err(ScopeProblem::Empty));
        assert_eq!(parse_zoom_scope("User:read:user"), Err(ScopeProblem::UpperCase));
        assert_eq!(parse_zoom_scope("user read"), Err(ScopeProblem::BadCharacters));
        assert_eq!(parse_zoom_scope("user:read:admin"), Err(ScopeProblem::Classic));
        assert!(matches!(
            parse_zoom_scope("user:fetch:user"),
            Err(ScopeProblem::Shape(_))
        ));
        assert!(matches!(
            parse_zoom_scope("user:read:user:root"),
            Err(ScopeProblem::Shape(_))
        ));
        assert!(matches!(parse_zoom_scope("a:b"), Err(ScopeProblem::Shape(_))));
        assert!(matches!(parse_zoom_scope("user::user"), Err(ScopeProblem::Shape(_))));
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest("dashboard:read:list_zoomroom:admin", ZOOM_KNOWN_SCOPES),
            Some("dashboard:read:list_zoomrooms:admin")
        );
        assert_eq!(suggest("phone:read:call_log:admin", ZOOM_KNOWN_SCOPES), None);
    }

    #[test]
    fn rfc6749_tokens() {
        assert!(is_rfc6749_scope_token("openid"));
        assert!(is_rfc6749_scope_token("https://graph.example/.default"));
        assert!(!is_rfc6749_scope_token("a b"));
        assert!(!is_rfc6749_scope_token("a\"b"));
        assert!(!is_rfc6749_scope_token(""));
    }
}
